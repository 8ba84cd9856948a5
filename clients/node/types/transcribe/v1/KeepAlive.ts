// Original file: ../../proto/transcribe/v1/transcribe.proto


export interface KeepAlive {
}

export interface KeepAlive__Output {
}
