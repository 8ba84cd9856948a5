// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface UtteranceEnd {
  'channel_index'?: (number);
  'channel_count'?: (number);
  'last_word_end_seconds'?: (number | string);
}

export interface UtteranceEnd__Output {
  'channel_index': (number);
  'channel_count': (number);
  'last_word_end_seconds': (number);
}
