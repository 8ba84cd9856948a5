export interface UtteranceEnd {
    'channelIndex'?: (number);
    'channelCount'?: (number);
    'lastWordEndSeconds'?: (number | string);
}
export interface UtteranceEnd__Output {
    'channelIndex': (number);
    'channelCount': (number);
    'lastWordEndSeconds': (number);
}
