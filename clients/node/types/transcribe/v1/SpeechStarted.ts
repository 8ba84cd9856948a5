// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface SpeechStarted {
  'channel_index'?: (number);
  'channel_count'?: (number);
  'timestamp_seconds'?: (number | string);
}

export interface SpeechStarted__Output {
  'channel_index': (number);
  'channel_count': (number);
  'timestamp_seconds': (number);
}
