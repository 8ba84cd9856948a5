export interface SpeechStarted {
    'channelIndex'?: (number);
    'channelCount'?: (number);
    'timestampSeconds'?: (number | string);
}
export interface SpeechStarted__Output {
    'channelIndex': (number);
    'channelCount': (number);
    'timestampSeconds': (number);
}
