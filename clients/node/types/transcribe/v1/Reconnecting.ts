// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface Reconnecting {
  'attempt'?: (number);
  'reason'?: (string);
  'committed_seconds'?: (number | string);
}

export interface Reconnecting__Output {
  'attempt': (number);
  'reason': (string);
  'committed_seconds': (number);
}
