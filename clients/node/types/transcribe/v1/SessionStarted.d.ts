import type { StreamingConfig as _transcribe_v1_StreamingConfig, StreamingConfig__Output as _transcribe_v1_StreamingConfig__Output } from '../../transcribe/v1/StreamingConfig';
export interface SessionStarted {
    'sessionId'?: (string);
    'upstreamRequestId'?: (string);
    'config'?: (_transcribe_v1_StreamingConfig | null);
}
export interface SessionStarted__Output {
    'sessionId': (string);
    'upstreamRequestId': (string);
    'config': (_transcribe_v1_StreamingConfig__Output | null);
}
