export interface SearchHit {
    'confidence'?: (number | string);
    'startSeconds'?: (number | string);
    'endSeconds'?: (number | string);
    'snippet'?: (string);
}
export interface SearchHit__Output {
    'confidence': (number);
    'startSeconds': (number);
    'endSeconds': (number);
    'snippet': (string);
}
