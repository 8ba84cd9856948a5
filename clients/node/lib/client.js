// The client: one `StreamTranscribe` call per stream, resumed on a new call when the gateway
// ends it UNAVAILABLE with a ResumePoint (a drain during a rolling restart, or its upstream
// retries exhausted), so that the application reads one continuous transcript.

import { EventEmitter, once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import grpc from '@grpc/grpc-js';

import { contract, statusDetails } from './contract.js';
import { DEFAULT_ADDR } from './defaults.js';
import {
  KeptAudio, KeptControls, MAX_CHUNK_BYTES, backoffMs, frameBytes, keepFromByte, planResume, sendUntil,
  shouldResume,
} from './resume.js';

export { DEFAULT_ADDR };
/** Resume settings: on; at most 5 resumes in a row without progress; 60 s of audio kept. */
export const DEFAULT_RESUME = Object.freeze({
  enabled: true,
  maxAttempts: 5,
  maxBufferSeconds: 60,
  initialBackoffMs: 250,
  maxBackoffMs: 5000,
  backoffMultiplier: 2,
});
/** Responses read ahead of the application before the call stops reading (flow control). */
const READ_AHEAD = 64;

/** The canonical name of a gRPC status code, such as `INVALID_ARGUMENT`. */
export function statusName(code) {
  return grpc.status[code] ?? 'UNKNOWN';
}

/** A stream ended with a non-OK gRPC status (after any resumes). */
export class TranscribeError extends Error {
  /**
   * @param {number} code the gRPC status code
   * @param {string} details the status message
   * @param {{reason?: string|null, domain?: string|null, resumePoint?: object|null}} [info]
   *   the ErrorInfo reason and domain and the ResumePoint from the status details
   */
  constructor(code, details, { reason = null, domain = null, resumePoint = null } = {}) {
    super(`${statusName(code)}: ${details}`);
    this.name = 'TranscribeError';
    this.code = code;
    this.statusName = statusName(code);
    this.details = details;
    this.reason = reason;
    this.domain = domain;
    this.resumePoint = resumePoint;
  }

  /** The error of a failed grpc-js call, with what its status details say. */
  static fromCall(err) {
    return new TranscribeError(err.code, err.details ?? String(err.message), statusDetails(err.metadata));
  }
}

/** Channel credentials: TLS with `caFile` (PEM) or the default roots, else plaintext. */
export function channelCredentials({ tls = false, caFile = null } = {}) {
  if (!tls && caFile === null) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(caFile !== null ? readFileSync(caFile) : null);
}

/** The call's metadata: `authorization: Bearer <token>` if a token is given, then `extra`. */
export function callMetadata(token = null, extra = []) {
  const metadata = new grpc.Metadata();
  if (token) metadata.add('authorization', `Bearer ${token}`);
  for (const [key, value] of extra) metadata.add(key, value);
  return metadata;
}

/** A connection to one gateway address (behind a balancer: any of its replicas). */
export class TranscribeClient {
  #client;

  /**
   * @param {string} [addr] `HOST:PORT`
   * @param {{token?: string|null, tls?: boolean, caFile?: string|null,
   *          metadata?: Array<[string, string]>, resume?: Partial<typeof DEFAULT_RESUME>|false}} [options]
   */
  constructor(addr = DEFAULT_ADDR, options = {}) {
    const { token = null, tls = false, caFile = null, metadata = [], resume = {} } = options;
    const { Client } = contract();
    this.addr = addr;
    this.#client = new Client(addr, channelCredentials({ tls, caFile }));
    this.metadata = () => callMetadata(token, metadata);
    this.resume = resume === false ? { ...DEFAULT_RESUME, enabled: false } : { ...DEFAULT_RESUME, ...resume };
  }

  /**
   * Opens a stream: `config` (a `StreamingConfig`, camelCase, enums by name) is sent first.
   * @param {object} config
   * @param {{signal?: AbortSignal, deadline?: Date|number}} [options]
   */
  stream(config = {}, options = {}) {
    return new TranscribeStream(this, this.#client, config, options);
  }

  /**
   * Streams `audio` (an iterable or async iterable of Buffers) and yields every response.
   * When `audio` throws, the stream is half-closed there and its error is thrown after the
   * results of the audio sent. Leaving the loop early cancels the stream.
   */
  async *transcribe(audio, config = {}, options = {}) {
    const stream = this.stream(config, options);
    for (const name of ['resuming', 'resumed']) {
      if (options[name]) stream.on(name, options[name]);
    }
    let audioError = null;
    const writing = (async () => {
      try {
        for await (const chunk of audio) {
          if (stream.closed) return;
          await stream.send(chunk);
        }
      } catch (err) {
        if (!stream.closed) audioError = err;
      } finally {
        if (!stream.closed) await stream.end().catch(() => {});
      }
    })();
    let finished = false;
    try {
      yield* stream;
      finished = true;
    } finally {
      if (!finished) stream.cancel(); // and the writer stops at its next chunk
    }
    // The gateway ends a call with OK only after the half-close, so the writer is done by now.
    await writing;
    if (audioError !== null) throw audioError;
  }

  /** Closes the channel (open streams are cancelled). */
  close() {
    this.#client.close();
  }
}

/**
 * One transcription: `send` audio, `finalize` (or `keepAlive`), `end`, and read the responses with
 * `for await`. Events: `resuming` `{attempt, error, resumePoint, delayMs, resendBytes,
 * summary}` before a new call is opened (`summary`: the failed call's, or null), `resumed`
 * `{attempt, sessionId, startOffsetSeconds}` once it has started. The application sees one
 * session: a resumed call's `sessionStarted` and a failed call's `summary` are not yielded.
 * Await each `send` before the next.
 */
export class TranscribeStream extends EventEmitter {
  #owner;
  #client;
  #config;
  #options;
  #frame;
  #carry = Buffer.alloc(0); // the start of a frame, waiting for its rest
  #kept;
  #controls = new KeptControls();
  #queue = [];
  #wakeReader = null;
  #wakePump = null;
  #done = false;
  #error = null;
  #call = null;
  #ready;
  #ended = false;
  #cancelled = false;
  #streamStartByte = 0;
  #streamStartOffset;
  #attempt = 0;
  #calls = 0;
  #started = false;
  #commits = new Map();
  #abort = () => this.cancel();

  constructor(owner, client, config, options) {
    super();
    this.#owner = owner;
    this.#client = client;
    this.#config = { ...config };
    this.#options = options;
    this.#frame = frameBytes(this.#config);
    const { enabled, maxBufferSeconds } = owner.resume;
    const bytesPerSecond = this.#frame === null ? 0 : this.#frame * this.#config.sampleRate;
    // Containerised audio cannot be cut at a time: nothing is kept and nothing resumed.
    this.#kept = new KeptAudio(enabled ? Math.floor(maxBufferSeconds * bytesPerSecond) : 0);
    this.#streamStartOffset = this.#config.startOffsetSeconds ?? 0;
    options.signal?.addEventListener('abort', this.#abort, { once: true });
    this.#ready = this.#open(this.#config, []);
    if (options.signal?.aborted) this.cancel();
  }

  /** True once the stream is over (ended by the gateway, failed or cancelled). */
  get closed() {
    return this.#done;
  }

  /**
   * Sends a chunk of audio of any size (respecting flow control; kept until committed). It goes
   * in messages of at most MAX_CHUNK_BYTES on whole frames: a frame cut short waits for the next
   * chunk, a control or `end()`.
   */
  async send(chunk) {
    if (this.#ended) throw new Error('send after end()');
    if (chunk.length === 0) return;
    await this.#sendAudio(this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk, false);
  }

  async #sendAudio(audio, ended) {
    // Frames count from the first byte given, across every stream of this transcription.
    const base = this.#kept.sentBytes;
    const pieces = [];
    let position = base;
    for (;;) {
      const until = sendUntil(position, base + audio.length, this.#frame ?? 1, MAX_CHUNK_BYTES, ended);
      if (until === position) break;
      pieces.push(audio.subarray(position - base, until - base));
      position = until;
    }
    // A copy: the application may reuse its buffer once `send` resolves.
    this.#carry = Buffer.from(audio.subarray(position - base));
    for (const piece of pieces) await this.#write({ audio: piece }, piece);
  }

  /**
   * Asks for the results of the audio sent so far to come back final. A resume that resends
   * audio from before it sends it again at the same place.
   */
  async finalize() {
    await this.#control({ finalize: {} });
  }

  /** Sends a KeepAlive in order with the audio (never resent: it only matters live). */
  async keepAlive() {
    await this.#control({ keepAlive: {} });
  }

  async #control(control) {
    if (this.#ended) throw new Error('control after end()');
    // A control keeps its place: audio given before it goes first, even a frame cut short.
    if (this.#carry.length > 0) await this.#sendAudio(this.#carry, true);
    await this.#write({ control }, null);
  }

  /** Half-closes: no more audio; the remaining results follow, then the stream ends. */
  async end() {
    if (this.#ended) return;
    this.#ended = true;
    await this.#ready;
    // The audio's last bytes go as they are, a frame cut short included. A stream that ended
    // meanwhile throws its error to the reader, not here: end() only half-closes.
    if (this.#carry.length > 0 && !this.#done) await this.#sendAudio(this.#carry, true).catch(() => {});
    if (!this.#done && !this.#call.writableEnded) this.#call.end();
  }

  /** Cancels the stream: reading throws TranscribeError CANCELLED. */
  cancel() {
    this.#cancelled = true;
    this.#call?.cancel();
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        if (this.#queue.length > 0) {
          const response = this.#queue.shift();
          this.#wakePump?.();
          yield response;
        } else if (this.#done) {
          if (this.#error !== null) throw this.#error;
          return;
        } else {
          await new Promise((resolve) => { this.#wakeReader = resolve; });
          this.#wakeReader = null;
        }
      }
    } finally {
      if (!this.#done) this.cancel();
    }
  }

  async #write(request, audio) {
    await this.#ready;
    if (this.#done) throw this.#error ?? new Error('the stream is over');
    const call = this.#call;
    if (audio !== null) this.#kept.append(audio);
    // Kept with the audio, so that a resume sends a Finalize again at its place.
    else if (this.#kept.maxBytes > 0) this.#controls.add(this.#kept.sentBytes, request.control);
    // A write into a call that is failing still counts: the audio is kept and resent.
    if (!call.write(request)) await drained(call);
  }

  /** Opens a call, sends the config and `replay`, and starts reading it. */
  async #open(config, replay) {
    const call = this.#client.StreamTranscribe(
      this.#owner.metadata(),
      this.#options.deadline != null ? { deadline: this.#options.deadline } : {},
    );
    this.#call = call;
    this.#calls += 1;
    this.#started = false;
    call.on('error', () => {}); // read through the iterator below
    if (this.#cancelled) call.cancel();
    call.write({ config });
    for (const request of replay) {
      if (!call.write(request)) await drained(call);
    }
    if (this.#ended && !call.writableEnded) call.end();
    this.#pump(call);
  }

  async #pump(call) {
    // A call's summary is its last response; it is held until the call's end says whether
    // the transcription is over (then it is yielded) or goes on on a new call (then the
    // `resuming` event carries it, and the application reads one summary, at the end).
    let summary = null;
    try {
      for await (const response of call) {
        if (!this.#accept(response)) continue;
        if (response.response === 'summary') summary = response;
        else await this.#push(response);
      }
      if (summary !== null) await this.#push(summary);
      this.#finish(null);
    } catch (err) {
      const error = typeof err?.code === 'number' ? TranscribeError.fromCall(err) : err;
      if (!this.#resumable(error)) {
        if (summary !== null) await this.#push(summary);
        this.#finish(error);
        return;
      }
      this.#ready = this.#resume(error, summary);
    }
  }

  /** Queues a response for the reader; waits while READ_AHEAD are unread (flow control). */
  async #push(response) {
    this.#queue.push(response);
    this.#wakeReader?.();
    while (this.#queue.length >= READ_AHEAD && !this.#done) {
      await new Promise((resolve) => { this.#wakePump = resolve; });
      this.#wakePump = null;
    }
  }

  /** Tracks commits and resumes from a response; false for one the application never sees. */
  #accept(response) {
    if (response.response === 'sessionStarted') this.#started = true;
    if (response.response === 'sessionStarted' && this.#calls > 1) {
      this.emit('resumed', {
        attempt: this.#attempt,
        sessionId: response.sessionStarted.sessionId,
        startOffsetSeconds: this.#streamStartOffset,
      });
      return false;
    }
    if (response.response === 'result' && response.result.isFinal && this.#frame !== null) {
      const { result } = response;
      const end = result.startSeconds + result.durationSeconds;
      this.#commits.set(result.channelIndex, Math.max(end, this.#commits.get(result.channelIndex) ?? 0));
      if (this.#commits.size >= Math.max(this.#config.channels ?? 0, 1)) {
        const committed = Math.min(...this.#commits.values());
        const byte = keepFromByte({
          streamStartByte: this.#streamStartByte,
          streamStartOffsetSeconds: this.#streamStartOffset,
          committedSeconds: committed,
          sampleRate: this.#config.sampleRate,
          frameBytes: this.#frame,
        });
        if (byte > this.#streamStartByte) this.#attempt = 0; // progress: the count starts again
        this.#kept.dropBefore(byte);
        this.#controls.dropThrough(byte);
      }
    }
    return true;
  }

  #resumable(error) {
    return this.#owner.resume.enabled && !this.#cancelled && error instanceof TranscribeError
      && shouldResume(error.code, this.#resumePoint(error))
      && this.#attempt < this.#owner.resume.maxAttempts;
  }

  /**
   * Where to resume after `error`: its ResumePoint; or, for a resumed call that failed before
   * its session started (a balancer with no replica ready yet), the point it resumed from.
   */
  #resumePoint(error) {
    if (error.resumePoint !== null) return error.resumePoint;
    if (this.#calls > 1 && !this.#started) {
      return { committedSeconds: this.#streamStartOffset, committedBytes: '0', receivedSeconds: 0 };
    }
    return null;
  }

  async #resume(error, summary) {
    const resumePoint = this.#resumePoint(error);
    const plan = planResume({
      frameBytes: this.#frame,
      streamStartByte: this.#streamStartByte,
      keptFromByte: this.#kept.keptFromByte,
      sentBytes: this.#kept.sentBytes,
      resumePoint,
    });
    if (!plan.resumable) {
      this.#finish(error);
      return;
    }
    this.#attempt += 1;
    const settings = this.#owner.resume;
    const delayMs = backoffMs(this.#attempt, {
      initialMs: settings.initialBackoffMs, maxMs: settings.maxBackoffMs, multiplier: settings.backoffMultiplier,
    });
    this.emit('resuming', {
      attempt: this.#attempt, error, resumePoint, delayMs, resendBytes: plan.resendBytes, summary,
    });
    try {
      await sleep(delayMs, undefined, { signal: this.#options.signal ?? undefined });
    } catch {
      this.#finish(new TranscribeError(grpc.status.CANCELLED, 'cancelled while resuming'));
      return;
    }
    if (this.#cancelled) {
      this.#finish(new TranscribeError(grpc.status.CANCELLED, 'cancelled while resuming'));
      return;
    }
    this.#kept.dropBefore(plan.resendFromByte);
    this.#streamStartByte = plan.resendFromByte;
    this.#streamStartOffset = plan.startOffsetSeconds;
    this.#commits.clear();
    // What the gateway answers for a failed resume is handled like any other failure: a
    // ResumePoint (committed 0 on a stream that never started) resends the same audio again.
    this.#controls.dropThrough(plan.resendFromByte);
    const replay = this.#controls.resend(this.#kept.from(plan.resendFromByte), plan.resendFromByte);
    await this.#open({ ...this.#config, startOffsetSeconds: plan.startOffsetSeconds }, replay);
  }

  #finish(error) {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    this.#options.signal?.removeEventListener('abort', this.#abort);
    this.#wakeReader?.();
    this.#wakePump?.();
  }
}

/** Waits for `call` to take more writes, or to be over. */
async function drained(call) {
  const over = new AbortController();
  const stop = () => over.abort();
  call.once('status', stop);
  call.once('close', stop);
  try {
    await once(call, 'drain', { signal: over.signal });
  } catch {
    // the call ended: whatever was written is kept for a resume, or the status says why
  } finally {
    call.off('status', stop);
    call.off('close', stop);
  }
}

/**
 * Transcribes `audio` through the gateway at `addr` and yields every response: a
 * `TranscribeClient` for one stream, closed at the end. Options as `TranscribeClient`'s, plus
 * `signal`, `deadline`, and `resuming`/`resumed` listeners.
 */
export async function* transcribe(addr, audio, config = {}, options = {}) {
  const client = new TranscribeClient(addr, options);
  try {
    yield* client.transcribe(audio, config, options);
  } finally {
    client.close();
  }
}
