// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface SearchHit {
  'confidence'?: (number | string);
  'start_seconds'?: (number | string);
  'end_seconds'?: (number | string);
  'snippet'?: (string);
}

export interface SearchHit__Output {
  'confidence': (number);
  'start_seconds': (number);
  'end_seconds': (number);
  'snippet': (string);
}
