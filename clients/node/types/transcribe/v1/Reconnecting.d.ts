export interface Reconnecting {
    'attempt'?: (number);
    'reason'?: (string);
    'committedSeconds'?: (number | string);
}
export interface Reconnecting__Output {
    'attempt': (number);
    'reason': (string);
    'committedSeconds': (number);
}
