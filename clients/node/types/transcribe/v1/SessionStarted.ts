// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { StreamingConfig as _transcribe_v1_StreamingConfig, StreamingConfig__Output as _transcribe_v1_StreamingConfig__Output } from '../../transcribe/v1/StreamingConfig';

export interface SessionStarted {
  'session_id'?: (string);
  'upstream_request_id'?: (string);
  'config'?: (_transcribe_v1_StreamingConfig | null);
}

export interface SessionStarted__Output {
  'session_id': (string);
  'upstream_request_id': (string);
  'config': (_transcribe_v1_StreamingConfig__Output | null);
}
