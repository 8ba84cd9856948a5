// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface Word {
  'word'?: (string);
  'start_seconds'?: (number | string);
  'end_seconds'?: (number | string);
  'confidence'?: (number | string);
  'punctuated_word'?: (string);
  'speaker'?: (number);
  'language'?: (string);
  '_speaker'?: "speaker";
}

export interface Word__Output {
  'word': (string);
  'start_seconds': (number);
  'end_seconds': (number);
  'confidence': (number);
  'punctuated_word': (string);
  'speaker'?: (number);
  'language': (string);
  '_speaker'?: "speaker";
}
