export interface Replacement {
    'find'?: (string);
    'replaceWith'?: (string);
}
export interface Replacement__Output {
    'find': (string);
    'replaceWith': (string);
}
