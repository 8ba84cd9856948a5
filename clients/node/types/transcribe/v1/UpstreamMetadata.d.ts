import type { ModelInfo as _transcribe_v1_ModelInfo, ModelInfo__Output as _transcribe_v1_ModelInfo__Output } from '../../transcribe/v1/ModelInfo';
export interface UpstreamMetadata {
    'requestId'?: (string);
    'created'?: (string);
    'durationSeconds'?: (number | string);
    'channels'?: (number);
    'models'?: (string)[];
    'modelInfo'?: ({
        [key: string]: _transcribe_v1_ModelInfo;
    });
    'extra'?: ({
        [key: string]: string;
    });
    'transactionKey'?: (string);
    'sha256'?: (string);
}
export interface UpstreamMetadata__Output {
    'requestId': (string);
    'created': (string);
    'durationSeconds': (number);
    'channels': (number);
    'models': (string)[];
    'modelInfo': ({
        [key: string]: _transcribe_v1_ModelInfo__Output;
    });
    'extra': ({
        [key: string]: string;
    });
    'transactionKey': (string);
    'sha256': (string);
}
