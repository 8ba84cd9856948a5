export interface Keyword {
    'term'?: (string);
    'intensifier'?: (number | string);
    '_intensifier'?: "intensifier";
}
export interface Keyword__Output {
    'term': (string);
    'intensifier'?: (number);
    '_intensifier'?: "intensifier";
}
