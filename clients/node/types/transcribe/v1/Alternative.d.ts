import type { Word as _transcribe_v1_Word, Word__Output as _transcribe_v1_Word__Output } from '../../transcribe/v1/Word';
export interface Alternative {
    'transcript'?: (string);
    'confidence'?: (number | string);
    'words'?: (_transcribe_v1_Word)[];
    'languages'?: (string)[];
}
export interface Alternative__Output {
    'transcript': (string);
    'confidence': (number);
    'words': (_transcribe_v1_Word__Output)[];
    'languages': (string)[];
}
