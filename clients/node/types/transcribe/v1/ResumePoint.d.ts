import type { Long } from '@grpc/proto-loader';
export interface ResumePoint {
    'committedSeconds'?: (number | string);
    'committedBytes'?: (number | string | Long);
    'receivedSeconds'?: (number | string);
}
export interface ResumePoint__Output {
    'committedSeconds': (number);
    'committedBytes': (string);
    'receivedSeconds': (number);
}
