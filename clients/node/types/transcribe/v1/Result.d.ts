import type { Alternative as _transcribe_v1_Alternative, Alternative__Output as _transcribe_v1_Alternative__Output } from '../../transcribe/v1/Alternative';
import type { SearchResult as _transcribe_v1_SearchResult, SearchResult__Output as _transcribe_v1_SearchResult__Output } from '../../transcribe/v1/SearchResult';
import type { Entity as _transcribe_v1_Entity, Entity__Output as _transcribe_v1_Entity__Output } from '../../transcribe/v1/Entity';
import type { ResultMetadata as _transcribe_v1_ResultMetadata, ResultMetadata__Output as _transcribe_v1_ResultMetadata__Output } from '../../transcribe/v1/ResultMetadata';
export interface Result {
    'channelIndex'?: (number);
    'channelCount'?: (number);
    'startSeconds'?: (number | string);
    'durationSeconds'?: (number | string);
    'isFinal'?: (boolean);
    'speechFinal'?: (boolean);
    'fromFinalize'?: (boolean);
    'alternatives'?: (_transcribe_v1_Alternative)[];
    'search'?: (_transcribe_v1_SearchResult)[];
    'entities'?: (_transcribe_v1_Entity)[];
    'metadata'?: (_transcribe_v1_ResultMetadata | null);
}
export interface Result__Output {
    'channelIndex': (number);
    'channelCount': (number);
    'startSeconds': (number);
    'durationSeconds': (number);
    'isFinal': (boolean);
    'speechFinal': (boolean);
    'fromFinalize': (boolean);
    'alternatives': (_transcribe_v1_Alternative__Output)[];
    'search': (_transcribe_v1_SearchResult__Output)[];
    'entities': (_transcribe_v1_Entity__Output)[];
    'metadata': (_transcribe_v1_ResultMetadata__Output | null);
}
