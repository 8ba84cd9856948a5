// Types of the library's API (lib/index.js). The message types are generated from the
// contract into ../types (./generate.sh): `X` is what you may pass, `X__Output` what you get.

import type { EventEmitter } from 'node:events';

import type { StreamingConfig } from '../types/transcribe/v1/StreamingConfig.js';
import type { StreamTranscribeResponse__Output } from '../types/transcribe/v1/StreamTranscribeResponse.js';
import type { ResumePoint__Output } from '../types/transcribe/v1/ResumePoint.js';
import type { Control } from '../types/transcribe/v1/Control.js';

export type { StreamingConfig } from '../types/transcribe/v1/StreamingConfig.js';
export type { StreamTranscribeResponse__Output as StreamTranscribeResponse } from '../types/transcribe/v1/StreamTranscribeResponse.js';
export type { ResumePoint__Output as ResumePoint } from '../types/transcribe/v1/ResumePoint.js';
export type { Control } from '../types/transcribe/v1/Control.js';
export type { Result__Output as Result } from '../types/transcribe/v1/Result.js';

/** A response as yielded: `JSON.stringify(response)` prints its proto3 JSON mapping. */
export type Response = StreamTranscribeResponse__Output;
export type Audio = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export declare const DEFAULT_ADDR: string;
export declare const PROTO_PATH: string;
export declare const ENCODINGS: readonly string[];
export declare const FALLBACK_BYTES_PER_SECOND: number;

export interface ResumeOptions {
  /** Resume a stream the gateway ends UNAVAILABLE with a ResumePoint (default true). */
  enabled: boolean;
  /** Resumes in a row without a new final result before giving up (default 5). */
  maxAttempts: number;
  /** Seconds of uncommitted audio kept for a resend (default 60); older audio is dropped. */
  maxBufferSeconds: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  backoffMultiplier: number;
}
export declare const DEFAULT_RESUME: Readonly<ResumeOptions>;

export interface ClientOptions {
  /** Sent as `authorization: Bearer <token>`. */
  token?: string | null;
  tls?: boolean;
  /** PEM roots to trust (implies TLS). */
  caFile?: string | null;
  metadata?: Array<[string, string]>;
  /** `false` turns automatic resume off. */
  resume?: Partial<ResumeOptions> | false;
}

export interface StreamOptions {
  /** Aborting it cancels the stream. */
  signal?: AbortSignal | null;
  /** Per call (each resume opens a call with the same deadline). */
  deadline?: Date | number | null;
}

export interface ResumingEvent {
  attempt: number;
  error: TranscribeError;
  resumePoint: ResumePoint__Output;
  delayMs: number;
  resendBytes: number;
  /** The failed call's summary (not yielded), or null. */
  summary: Response | null;
}

export interface ResumedEvent {
  attempt: number;
  sessionId: string;
  startOffsetSeconds: number;
}

export interface TranscribeOptions extends StreamOptions {
  resuming?: (event: ResumingEvent) => void;
  resumed?: (event: ResumedEvent) => void;
}

/** A stream ended with a non-OK gRPC status (after any resumes). */
export declare class TranscribeError extends Error {
  constructor(code: number, details: string, info?: {
    reason?: string | null; domain?: string | null; resumePoint?: ResumePoint__Output | null;
  });
  /** The gRPC status code. */
  readonly code: number;
  /** Its canonical name, such as `UNAVAILABLE`. */
  readonly statusName: string;
  /** The status message. */
  readonly details: string;
  /** The `google.rpc.ErrorInfo` reason, such as `DRAINING`, if the gateway sent one. */
  readonly reason: string | null;
  readonly domain: string | null;
  /** Where the stream can be resumed, if the gateway said. */
  readonly resumePoint: ResumePoint__Output | null;
}

export declare class TranscribeStream extends EventEmitter implements AsyncIterable<Response> {
  /** True once the stream is over. */
  readonly closed: boolean;
  /**
   * Sends a chunk of audio of any size, in messages of at most MAX_CHUNK_BYTES on whole frames
   * (a frame cut short waits for the next chunk, a control or `end()`); await it before the next.
   */
  send(chunk: Uint8Array): Promise<void>;
  /** Asks for the results of the audio sent so far to come back final. */
  finalize(): Promise<void>;
  /** Sends a KeepAlive in order with the audio (a resume does not resend it). */
  keepAlive(): Promise<void>;
  /** Half-closes: the remaining results follow, then the iteration ends. */
  end(): Promise<void>;
  cancel(): void;
  [Symbol.asyncIterator](): AsyncGenerator<Response, void, undefined>;
  on(event: 'resuming', listener: (event: ResumingEvent) => void): this;
  on(event: 'resumed', listener: (event: ResumedEvent) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}

export declare class TranscribeClient {
  constructor(addr?: string, options?: ClientOptions);
  readonly addr: string;
  readonly resume: ResumeOptions;
  stream(config?: StreamingConfig, options?: StreamOptions): TranscribeStream;
  transcribe(audio: Audio, config?: StreamingConfig, options?: TranscribeOptions): AsyncGenerator<Response, void, undefined>;
  close(): void;
}

/** A client for one stream, closed at the end. */
export declare function transcribe(
  addr: string, audio: Audio, config?: StreamingConfig, options?: ClientOptions & TranscribeOptions,
): AsyncGenerator<Response, void, undefined>;

export declare function statusName(code: number): string;
export declare function callMetadata(token?: string | null, extra?: Array<[string, string]>): unknown;
export declare function channelCredentials(options?: { tls?: boolean; caFile?: string | null }): unknown;
export declare function contract(): unknown;
/** A response from its proto3 JSON, through the wire format (for recorded streams, tests). */
export declare function responseFromJSON(json: string | object): Response;
export declare function statusDetails(raw: Uint8Array | unknown): {
  reason: string | null; domain: string | null; resumePoint: ResumePoint__Output | null;
};

export declare function frameBytes(config: StreamingConfig): number | null;
export declare function shouldResume(code: number, resumePoint: ResumePoint__Output | null): boolean;
export declare function keepFromByte(args: {
  streamStartByte: number; streamStartOffsetSeconds: number; committedSeconds: number;
  sampleRate: number; frameBytes: number;
}): number;
export declare function planResume(args: {
  frameBytes: number | null; streamStartByte: number; keptFromByte: number; sentBytes: number;
  resumePoint: ResumePoint__Output | null;
}): { resumable: false } | {
  resumable: true; startOffsetSeconds: number; resendFromByte: number; resendBytes: number;
};
/** Most audio bytes per request message. */
export declare const MAX_CHUNK_BYTES: number;
/**
 * Where the next audio message from `position` ends: at most `limit` bytes, on a whole frame
 * unless the audio `ended` or the next control (`controlAt`) comes first.
 */
export declare function sendUntil(
  position: number, end: number, frame: number, limit: number, ended: boolean, controlAt?: number | null,
): number;
export declare function backoffMs(
  attempt: number, settings: { initialMs: number; maxMs: number; multiplier: number }, random?: () => number,
): number;
export declare class KeptAudio {
  constructor(maxBytes: number);
  readonly maxBytes: number;
  readonly sentBytes: number;
  readonly keptFromByte: number;
  readonly size: number;
  append(chunk: Uint8Array): void;
  dropBefore(byte: number): void;
  from(byte: number): Buffer[];
}

export declare const MAX_KEPT_CONTROLS: number;
/** The Finalizes given so far at their byte positions, for a resume to send again. */
export declare class KeptControls {
  constructor(maxKept?: number);
  readonly maxKept: number;
  readonly entries: Array<{ position: number; control: Control }>;
  add(position: number, control: Control): void;
  dropThrough(position: number): void;
  resend(chunks: Uint8Array[], fromByte: number): Array<{ audio: Uint8Array } | { control: Control }>;
}

export interface WavInfo {
  formatTag: number; channels: number; sampleRate: number; byteRate: number; blockAlign: number;
  bitsPerSample: number; dataOffset: number; dataSize: number; isIntegerPcm: boolean; isLinear16: boolean;
}
export interface AudioPlan {
  encoding: string | null; sampleRate: number; channels: number; rate: number | null;
  chunkSize: number; frame: number; payload: Buffer | null;
}
export declare class WavError extends Error {}
export declare function parseWav(data: Buffer): WavInfo;
export declare function encodingEnum(encoding: string | null | undefined): string;
export declare function bytesPerSecond(encoding: string, sampleRate: number, channels?: number): number | null;
export declare function planFile(data: Buffer, flags: { encoding: string | null; sampleRate: number; chunkMs: number }): AudioPlan;
export declare function planUrl(flags: { encoding: string | null; sampleRate: number }): AudioPlan;
export declare function splitChunks(data: Buffer, size: number): Generator<Buffer, void, undefined>;
export declare function pace(chunks: Audio, rate: number, signal?: AbortSignal): AsyncGenerator<Buffer, void, undefined>;
export declare function httpChunks(url: string, signal?: AbortSignal): AsyncGenerator<Buffer, void, undefined>;
export declare function readableChunks(readable: AsyncIterable<Uint8Array>, maxBytes: number, frame?: number): AsyncGenerator<Buffer, void, undefined>;
