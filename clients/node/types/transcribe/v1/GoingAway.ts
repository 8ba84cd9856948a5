// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface GoingAway {
  'reason'?: (string);
  'grace_seconds'?: (number | string);
}

export interface GoingAway__Output {
  'reason': (string);
  'grace_seconds': (number);
}
