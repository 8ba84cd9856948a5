export interface Reconnected {
    'upstreamRequestId'?: (string);
    'replayedAudioSeconds'?: (number | string);
    'attempts'?: (number);
}
export interface Reconnected__Output {
    'upstreamRequestId': (string);
    'replayedAudioSeconds': (number);
    'attempts': (number);
}
