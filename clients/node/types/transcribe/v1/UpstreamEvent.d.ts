import type { Reconnecting as _transcribe_v1_Reconnecting, Reconnecting__Output as _transcribe_v1_Reconnecting__Output } from '../../transcribe/v1/Reconnecting';
import type { Reconnected as _transcribe_v1_Reconnected, Reconnected__Output as _transcribe_v1_Reconnected__Output } from '../../transcribe/v1/Reconnected';
import type { GoingAway as _transcribe_v1_GoingAway, GoingAway__Output as _transcribe_v1_GoingAway__Output } from '../../transcribe/v1/GoingAway';
export interface UpstreamEvent {
    'reconnecting'?: (_transcribe_v1_Reconnecting | null);
    'reconnected'?: (_transcribe_v1_Reconnected | null);
    'goingAway'?: (_transcribe_v1_GoingAway | null);
    'event'?: "reconnecting" | "reconnected" | "goingAway";
}
export interface UpstreamEvent__Output {
    'reconnecting'?: (_transcribe_v1_Reconnecting__Output | null);
    'reconnected'?: (_transcribe_v1_Reconnected__Output | null);
    'goingAway'?: (_transcribe_v1_GoingAway__Output | null);
    'event'?: "reconnecting" | "reconnected" | "goingAway";
}
