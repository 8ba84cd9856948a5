import type { ModelInfo as _transcribe_v1_ModelInfo, ModelInfo__Output as _transcribe_v1_ModelInfo__Output } from '../../transcribe/v1/ModelInfo';
export interface ResultMetadata {
    'upstreamRequestId'?: (string);
    'modelInfo'?: (_transcribe_v1_ModelInfo | null);
    'modelUuid'?: (string);
    'extra'?: ({
        [key: string]: string;
    });
}
export interface ResultMetadata__Output {
    'upstreamRequestId': (string);
    'modelInfo': (_transcribe_v1_ModelInfo__Output | null);
    'modelUuid': (string);
    'extra': ({
        [key: string]: string;
    });
}
