// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { ModelInfo as _transcribe_v1_ModelInfo, ModelInfo__Output as _transcribe_v1_ModelInfo__Output } from '../../transcribe/v1/ModelInfo';

export interface ResultMetadata {
  'upstream_request_id'?: (string);
  'model_info'?: (_transcribe_v1_ModelInfo | null);
  'model_uuid'?: (string);
  'extra'?: ({[key: string]: string});
}

export interface ResultMetadata__Output {
  'upstream_request_id': (string);
  'model_info': (_transcribe_v1_ModelInfo__Output | null);
  'model_uuid': (string);
  'extra': ({[key: string]: string});
}
