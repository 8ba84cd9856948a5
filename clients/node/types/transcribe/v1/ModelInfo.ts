// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface ModelInfo {
  'name'?: (string);
  'version'?: (string);
  'arch'?: (string);
}

export interface ModelInfo__Output {
  'name': (string);
  'version': (string);
  'arch': (string);
}
