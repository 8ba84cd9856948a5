export interface GoingAway {
    'reason'?: (string);
    'graceSeconds'?: (number | string);
}
export interface GoingAway__Output {
    'reason': (string);
    'graceSeconds': (number);
}
