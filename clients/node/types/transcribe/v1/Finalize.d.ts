export interface Finalize {
    'channel'?: (number);
    '_channel'?: "channel";
}
export interface Finalize__Output {
    'channel'?: (number);
    '_channel'?: "channel";
}
