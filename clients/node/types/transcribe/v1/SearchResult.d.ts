import type { SearchHit as _transcribe_v1_SearchHit, SearchHit__Output as _transcribe_v1_SearchHit__Output } from '../../transcribe/v1/SearchHit';
export interface SearchResult {
    'query'?: (string);
    'hits'?: (_transcribe_v1_SearchHit)[];
}
export interface SearchResult__Output {
    'query': (string);
    'hits': (_transcribe_v1_SearchHit__Output)[];
}
