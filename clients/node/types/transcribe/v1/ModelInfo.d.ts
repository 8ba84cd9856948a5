export interface ModelInfo {
    'name'?: (string);
    'version'?: (string);
    'arch'?: (string);
}
export interface ModelInfo__Output {
    'name': (string);
    'version': (string);
    'arch': (string);
}
