// Original file: ../../proto/transcribe/v1/transcribe.proto

import type { Alternative as _transcribe_v1_Alternative, Alternative__Output as _transcribe_v1_Alternative__Output } from '../../transcribe/v1/Alternative';
import type { SearchResult as _transcribe_v1_SearchResult, SearchResult__Output as _transcribe_v1_SearchResult__Output } from '../../transcribe/v1/SearchResult';
import type { Entity as _transcribe_v1_Entity, Entity__Output as _transcribe_v1_Entity__Output } from '../../transcribe/v1/Entity';
import type { ResultMetadata as _transcribe_v1_ResultMetadata, ResultMetadata__Output as _transcribe_v1_ResultMetadata__Output } from '../../transcribe/v1/ResultMetadata';

export interface Result {
  'channel_index'?: (number);
  'channel_count'?: (number);
  'start_seconds'?: (number | string);
  'duration_seconds'?: (number | string);
  'is_final'?: (boolean);
  'speech_final'?: (boolean);
  'from_finalize'?: (boolean);
  'alternatives'?: (_transcribe_v1_Alternative)[];
  'search'?: (_transcribe_v1_SearchResult)[];
  'entities'?: (_transcribe_v1_Entity)[];
  'metadata'?: (_transcribe_v1_ResultMetadata | null);
}

export interface Result__Output {
  'channel_index': (number);
  'channel_count': (number);
  'start_seconds': (number);
  'duration_seconds': (number);
  'is_final': (boolean);
  'speech_final': (boolean);
  'from_finalize': (boolean);
  'alternatives': (_transcribe_v1_Alternative__Output)[];
  'search': (_transcribe_v1_SearchResult__Output)[];
  'entities': (_transcribe_v1_Entity__Output)[];
  'metadata': (_transcribe_v1_ResultMetadata__Output | null);
}
