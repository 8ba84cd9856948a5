// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { UpstreamMetadata as _transcribe_v1_UpstreamMetadata, UpstreamMetadata__Output as _transcribe_v1_UpstreamMetadata__Output } from '../../transcribe/v1/UpstreamMetadata';

export interface SessionSummary {
  'audio_received_seconds'?: (number | string);
  'audio_relayed_seconds'?: (number | string);
  'audio_replayed_seconds'?: (number | string);
  'upstream_request_ids'?: (string)[];
  'reconnect_count'?: (number);
  'upstream_metadata'?: (_transcribe_v1_UpstreamMetadata)[];
}

export interface SessionSummary__Output {
  'audio_received_seconds': (number);
  'audio_relayed_seconds': (number);
  'audio_replayed_seconds': (number);
  'upstream_request_ids': (string)[];
  'reconnect_count': (number);
  'upstream_metadata': (_transcribe_v1_UpstreamMetadata__Output)[];
}
