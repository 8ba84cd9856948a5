// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { SessionStarted as _transcribe_v1_SessionStarted, SessionStarted__Output as _transcribe_v1_SessionStarted__Output } from '../../transcribe/v1/SessionStarted';
import type { Result as _transcribe_v1_Result, Result__Output as _transcribe_v1_Result__Output } from '../../transcribe/v1/Result';
import type { SpeechStarted as _transcribe_v1_SpeechStarted, SpeechStarted__Output as _transcribe_v1_SpeechStarted__Output } from '../../transcribe/v1/SpeechStarted';
import type { UtteranceEnd as _transcribe_v1_UtteranceEnd, UtteranceEnd__Output as _transcribe_v1_UtteranceEnd__Output } from '../../transcribe/v1/UtteranceEnd';
import type { UpstreamEvent as _transcribe_v1_UpstreamEvent, UpstreamEvent__Output as _transcribe_v1_UpstreamEvent__Output } from '../../transcribe/v1/UpstreamEvent';
import type { SessionSummary as _transcribe_v1_SessionSummary, SessionSummary__Output as _transcribe_v1_SessionSummary__Output } from '../../transcribe/v1/SessionSummary';

export interface StreamTranscribeResponse {
  'session_started'?: (_transcribe_v1_SessionStarted | null);
  'result'?: (_transcribe_v1_Result | null);
  'speech_started'?: (_transcribe_v1_SpeechStarted | null);
  'utterance_end'?: (_transcribe_v1_UtteranceEnd | null);
  'upstream_event'?: (_transcribe_v1_UpstreamEvent | null);
  'summary'?: (_transcribe_v1_SessionSummary | null);
  'response'?: "session_started"|"result"|"speech_started"|"utterance_end"|"upstream_event"|"summary";
}

export interface StreamTranscribeResponse__Output {
  'session_started'?: (_transcribe_v1_SessionStarted__Output | null);
  'result'?: (_transcribe_v1_Result__Output | null);
  'speech_started'?: (_transcribe_v1_SpeechStarted__Output | null);
  'utterance_end'?: (_transcribe_v1_UtteranceEnd__Output | null);
  'upstream_event'?: (_transcribe_v1_UpstreamEvent__Output | null);
  'summary'?: (_transcribe_v1_SessionSummary__Output | null);
  'response'?: "session_started"|"result"|"speech_started"|"utterance_end"|"upstream_event"|"summary";
}
