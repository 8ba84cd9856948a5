// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface Replacement {
  'find'?: (string);
  'replace_with'?: (string);
}

export interface Replacement__Output {
  'find': (string);
  'replace_with': (string);
}
