// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { ModelInfo as _transcribe_v1_ModelInfo, ModelInfo__Output as _transcribe_v1_ModelInfo__Output } from '../../transcribe/v1/ModelInfo';

export interface UpstreamMetadata {
  'request_id'?: (string);
  'created'?: (string);
  'duration_seconds'?: (number | string);
  'channels'?: (number);
  'models'?: (string)[];
  'model_info'?: ({[key: string]: _transcribe_v1_ModelInfo});
  'extra'?: ({[key: string]: string});
  'transaction_key'?: (string);
  'sha256'?: (string);
}

export interface UpstreamMetadata__Output {
  'request_id': (string);
  'created': (string);
  'duration_seconds': (number);
  'channels': (number);
  'models': (string)[];
  'model_info': ({[key: string]: _transcribe_v1_ModelInfo__Output});
  'extra': ({[key: string]: string});
  'transaction_key': (string);
  'sha256': (string);
}
