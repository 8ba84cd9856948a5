// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface Reconnected {
  'upstream_request_id'?: (string);
  'replayed_audio_seconds'?: (number | string);
  'attempts'?: (number);
}

export interface Reconnected__Output {
  'upstream_request_id': (string);
  'replayed_audio_seconds': (number);
  'attempts': (number);
}
