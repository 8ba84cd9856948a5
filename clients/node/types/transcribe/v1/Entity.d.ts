export interface Entity {
    'label'?: (string);
    'value'?: (string);
    'rawValue'?: (string);
    'confidence'?: (number | string);
    'startWord'?: (number);
    'endWord'?: (number);
}
export interface Entity__Output {
    'label': (string);
    'value': (string);
    'rawValue': (string);
    'confidence': (number);
    'startWord': (number);
    'endWord': (number);
}
