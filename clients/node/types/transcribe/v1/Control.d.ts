import type { Finalize as _transcribe_v1_Finalize, Finalize__Output as _transcribe_v1_Finalize__Output } from '../../transcribe/v1/Finalize';
import type { KeepAlive as _transcribe_v1_KeepAlive, KeepAlive__Output as _transcribe_v1_KeepAlive__Output } from '../../transcribe/v1/KeepAlive';
export interface Control {
    'finalize'?: (_transcribe_v1_Finalize | null);
    'keepAlive'?: (_transcribe_v1_KeepAlive | null);
    'command'?: "finalize" | "keepAlive";
}
export interface Control__Output {
    'finalize'?: (_transcribe_v1_Finalize__Output | null);
    'keepAlive'?: (_transcribe_v1_KeepAlive__Output | null);
    'command'?: "finalize" | "keepAlive";
}
