export interface Word {
    'word'?: (string);
    'startSeconds'?: (number | string);
    'endSeconds'?: (number | string);
    'confidence'?: (number | string);
    'punctuatedWord'?: (string);
    'speaker'?: (number);
    'language'?: (string);
    '_speaker'?: "speaker";
}
export interface Word__Output {
    'word': (string);
    'startSeconds': (number);
    'endSeconds': (number);
    'confidence': (number);
    'punctuatedWord': (string);
    'speaker'?: (number);
    'language': (string);
    '_speaker'?: "speaker";
}
