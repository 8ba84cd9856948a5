import type { UpstreamMetadata as _transcribe_v1_UpstreamMetadata, UpstreamMetadata__Output as _transcribe_v1_UpstreamMetadata__Output } from '../../transcribe/v1/UpstreamMetadata';
export interface SessionSummary {
    'audioReceivedSeconds'?: (number | string);
    'audioRelayedSeconds'?: (number | string);
    'audioReplayedSeconds'?: (number | string);
    'upstreamRequestIds'?: (string)[];
    'reconnectCount'?: (number);
    'upstreamMetadata'?: (_transcribe_v1_UpstreamMetadata)[];
}
export interface SessionSummary__Output {
    'audioReceivedSeconds': (number);
    'audioRelayedSeconds': (number);
    'audioReplayedSeconds': (number);
    'upstreamRequestIds': (string)[];
    'reconnectCount': (number);
    'upstreamMetadata': (_transcribe_v1_UpstreamMetadata__Output)[];
}
