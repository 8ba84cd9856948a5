// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { Long } from '@grpc/proto-loader';

export interface ResumePoint {
  'committed_seconds'?: (number | string);
  'committed_bytes'?: (number | string | Long);
  'received_seconds'?: (number | string);
}

export interface ResumePoint__Output {
  'committed_seconds': (number);
  'committed_bytes': (string);
  'received_seconds': (number);
}
