import type { StreamingConfig as _transcribe_v1_StreamingConfig, StreamingConfig__Output as _transcribe_v1_StreamingConfig__Output } from '../../transcribe/v1/StreamingConfig';
import type { Control as _transcribe_v1_Control, Control__Output as _transcribe_v1_Control__Output } from '../../transcribe/v1/Control';
export interface StreamTranscribeRequest {
    'config'?: (_transcribe_v1_StreamingConfig | null);
    'audio'?: (Buffer | Uint8Array | string);
    'control'?: (_transcribe_v1_Control | null);
    'request'?: "config" | "audio" | "control";
}
export interface StreamTranscribeRequest__Output {
    'config'?: (_transcribe_v1_StreamingConfig__Output | null);
    'audio'?: (Buffer);
    'control'?: (_transcribe_v1_Control__Output | null);
    'request'?: "config" | "audio" | "control";
}
