// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface Entity {
  'label'?: (string);
  'value'?: (string);
  'raw_value'?: (string);
  'confidence'?: (number | string);
  'start_word'?: (number);
  'end_word'?: (number);
}

export interface Entity__Output {
  'label': (string);
  'value': (string);
  'raw_value': (string);
  'confidence': (number);
  'start_word': (number);
  'end_word': (number);
}
