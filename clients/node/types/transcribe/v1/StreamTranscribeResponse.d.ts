import type { SessionStarted as _transcribe_v1_SessionStarted, SessionStarted__Output as _transcribe_v1_SessionStarted__Output } from '../../transcribe/v1/SessionStarted';
import type { Result as _transcribe_v1_Result, Result__Output as _transcribe_v1_Result__Output } from '../../transcribe/v1/Result';
import type { SpeechStarted as _transcribe_v1_SpeechStarted, SpeechStarted__Output as _transcribe_v1_SpeechStarted__Output } from '../../transcribe/v1/SpeechStarted';
import type { UtteranceEnd as _transcribe_v1_UtteranceEnd, UtteranceEnd__Output as _transcribe_v1_UtteranceEnd__Output } from '../../transcribe/v1/UtteranceEnd';
import type { UpstreamEvent as _transcribe_v1_UpstreamEvent, UpstreamEvent__Output as _transcribe_v1_UpstreamEvent__Output } from '../../transcribe/v1/UpstreamEvent';
import type { SessionSummary as _transcribe_v1_SessionSummary, SessionSummary__Output as _transcribe_v1_SessionSummary__Output } from '../../transcribe/v1/SessionSummary';
export interface StreamTranscribeResponse {
    'sessionStarted'?: (_transcribe_v1_SessionStarted | null);
    'result'?: (_transcribe_v1_Result | null);
    'speechStarted'?: (_transcribe_v1_SpeechStarted | null);
    'utteranceEnd'?: (_transcribe_v1_UtteranceEnd | null);
    'upstreamEvent'?: (_transcribe_v1_UpstreamEvent | null);
    'summary'?: (_transcribe_v1_SessionSummary | null);
    'response'?: "sessionStarted" | "result" | "speechStarted" | "utteranceEnd" | "upstreamEvent" | "summary";
}
export interface StreamTranscribeResponse__Output {
    'sessionStarted'?: (_transcribe_v1_SessionStarted__Output | null);
    'result'?: (_transcribe_v1_Result__Output | null);
    'speechStarted'?: (_transcribe_v1_SpeechStarted__Output | null);
    'utteranceEnd'?: (_transcribe_v1_UtteranceEnd__Output | null);
    'upstreamEvent'?: (_transcribe_v1_UpstreamEvent__Output | null);
    'summary'?: (_transcribe_v1_SessionSummary__Output | null);
    'response'?: "sessionStarted" | "result" | "speechStarted" | "utteranceEnd" | "upstreamEvent" | "summary";
}
