// The decisions behind automatic resume, without I/O: which audio to keep, where a new stream
// starts, how long to wait before it. Byte positions count from the first byte of audio the
// application gave the library, so they span every stream of one transcription
// (clients/testdata/README.md, `resume.json`).

/** Bytes per sample of the raw encodings; other encodings are containerised (not resumable). */
const SAMPLE_BYTES = {
  AUDIO_ENCODING_LINEAR16: 2,
  AUDIO_ENCODING_LINEAR32: 4,
  AUDIO_ENCODING_MULAW: 1,
  AUDIO_ENCODING_ALAW: 1,
};

/** gRPC's UNAVAILABLE: the one status a stream is resumed on. */
const UNAVAILABLE = 14;

/** Whether a stream that ended with `code` and `resumePoint` (or null) may be resumed. */
export function shouldResume(code, resumePoint) {
  return code === UNAVAILABLE && resumePoint !== null && resumePoint !== undefined;
}

/** Most audio bytes per request message (as the Python and Go libraries send). */
export const MAX_CHUNK_BYTES = 32 * 1024;

/**
 * Where the next audio message from `position` ends (`position`: nothing to send yet): at most
 * `limit` bytes, up to the audio given so far (`end`), on a whole frame of `frame` bytes counted
 * from the first byte (clients/testdata/README.md: chunks are whole frames), so a frame cut short
 * waits for its rest. Unless the audio has ended (its last bytes go as they are) or the next
 * control (`controlAt`, or null) comes first: the message stops there, even within a frame, so
 * that the control keeps its place.
 */
export function sendUntil(position, end, frame, limit, ended, controlAt = null) {
  const stop = Math.min(end, position + limit);
  if (controlAt !== null && controlAt <= stop) return Math.max(controlAt, position);
  if (ended && stop === end) return stop;
  return Math.max(stop - (stop % Math.max(frame, 1)), position);
}

/** Rounding margin: times are rounded to microseconds; a millisecond never drops a needed byte. */
const COMMIT_MARGIN_SECONDS = 0.001;

/**
 * Bytes per frame (one sample of every channel) of raw audio in `config`, or null for
 * containerised audio, which cannot be cut at a time and so is not resumable.
 * @param {{encoding?: string, channels?: number, sampleRate?: number}} config
 */
export function frameBytes(config) {
  const width = SAMPLE_BYTES[config.encoding];
  if (width === undefined || !(config.sampleRate > 0)) return null;
  return width * Math.max(config.channels ?? 0, 1);
}

/**
 * The first byte still needed once a final result ends at `committedSeconds` (which includes
 * the stream's `start_offset_seconds`): the audio before it may be dropped.
 */
export function keepFromByte({
  streamStartByte, streamStartOffsetSeconds, committedSeconds, sampleRate, frameBytes: frame,
}) {
  const seconds = committedSeconds - streamStartOffsetSeconds - COMMIT_MARGIN_SECONDS;
  const frames = Math.floor(seconds * sampleRate + 1e-6);
  return streamStartByte + Math.max(0, frames) * frame;
}

/**
 * What the next stream sends after a stream that began at `streamStartByte` failed with
 * `resumePoint` while the library kept the bytes from `keptFromByte` to `sentBytes`.
 * `frameBytes` is null for containerised audio. Returns `{resumable: false}` or
 * `{resumable: true, startOffsetSeconds, resendFromByte, resendBytes}`.
 */
export function planResume({ frameBytes: frame, streamStartByte, keptFromByte, sentBytes, resumePoint }) {
  if (frame === null || resumePoint === null) return { resumable: false };
  const resendFromByte = streamStartByte + Number(resumePoint.committedBytes ?? 0);
  if (resendFromByte < keptFromByte || resendFromByte > sentBytes) return { resumable: false };
  return {
    resumable: true,
    startOffsetSeconds: resumePoint.committedSeconds ?? 0,
    resendFromByte,
    resendBytes: sentBytes - resendFromByte,
  };
}

/**
 * The delay before resume attempt `attempt` (1, 2, ...): exponential from `initialMs` by
 * `multiplier`, capped at `maxMs`, with full jitter so that the streams a drained replica let go
 * do not all come back at once.
 */
export function backoffMs(attempt, { initialMs, maxMs, multiplier }, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * multiplier ** Math.max(0, attempt - 1));
  return Math.round(ceiling * (0.5 + random() / 2));
}

/**
 * The audio not yet committed, in order, at most `maxBytes` of it: `append` past the bound
 * drops the oldest bytes (a resume that needs them is then impossible, and says so).
 */
export class KeptAudio {
  #chunks = [];
  #keptFrom = 0;
  #sent = 0;
  #size = 0;

  /** @param {number} maxBytes */
  constructor(maxBytes) {
    if (!(maxBytes >= 0)) throw new RangeError('maxBytes must be zero or positive');
    this.maxBytes = maxBytes;
  }

  /** Bytes given so far (the position after the last byte). */
  get sentBytes() {
    return this.#sent;
  }

  /** The position of the first byte still kept. */
  get keptFromByte() {
    return this.#keptFrom;
  }

  /** Bytes kept now (at most `maxBytes`). */
  get size() {
    return this.#size;
  }

  /** Keeps a copy of `chunk` (the caller may reuse its buffer). */
  append(chunk) {
    this.#sent += chunk.length;
    this.#chunks.push(Buffer.from(chunk));
    this.#size += chunk.length;
    if (this.#size > this.maxBytes) this.dropBefore(this.#sent - this.maxBytes);
  }

  /** Drops the kept bytes before position `byte` (committed audio). */
  dropBefore(byte) {
    let excess = Math.min(byte, this.#sent) - this.#keptFrom;
    while (excess > 0 && this.#chunks.length > 0) {
      const first = this.#chunks[0];
      if (first.length <= excess) {
        this.#chunks.shift();
        excess -= first.length;
        this.#keptFrom += first.length;
        this.#size -= first.length;
      } else {
        this.#chunks[0] = first.subarray(excess);
        this.#keptFrom += excess;
        this.#size -= excess;
        excess = 0;
      }
    }
  }

  /** The kept bytes from position `byte` on, as chunks (`byte` must be kept). */
  from(byte) {
    if (byte < this.#keptFrom || byte > this.#sent) {
      throw new RangeError(`byte ${byte} is not kept (${this.#keptFrom} to ${this.#sent})`);
    }
    const out = [];
    let skip = byte - this.#keptFrom;
    for (const chunk of this.#chunks) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
      } else {
        out.push(skip > 0 ? chunk.subarray(skip) : chunk);
        skip = 0;
      }
    }
    return out;
  }
}

/** Controls kept for resending by default, at most; past that the oldest goes. */
export const MAX_KEPT_CONTROLS = 1024;

/** A control's identity: its proto3 JSON with sorted keys (`{}` and `{channel: 0}` differ). */
function controlKey(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const keys = Object.keys(value).filter((key) => value[key] !== undefined).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${controlKey(value[key])}`).join(',')}}`;
}

/**
 * The Finalizes given so far, each at the byte position of the audio it follows
 * (clients/testdata/README.md, `controls.json`): a resume sends each one after its resend
 * point again, at its place. A KeepAlive is not kept (it only matters live), nor the same
 * Finalize twice at one place (resending one is enough); one at or before a committed
 * position goes (`dropThrough`). Holds at most `maxKept`: past that the oldest goes (a resume
 * then does not resend it).
 */
export class KeptControls {
  #entries = [];

  /** @param {number} [maxKept] */
  constructor(maxKept = MAX_KEPT_CONTROLS) {
    if (!(maxKept > 0)) throw new RangeError('maxKept must be positive');
    this.maxKept = maxKept;
  }

  /** The kept controls, `{position, control}`, in order. */
  get entries() {
    return this.#entries.map(({ position, control }) => ({ position, control }));
  }

  /** Records `control` (a `Control`), given after the audio before `position`. */
  add(position, control) {
    const last = this.#entries.at(-1);
    if (last !== undefined && position < last.position) {
      throw new RangeError('controls are added in the order of the audio');
    }
    if (control?.finalize == null) return;
    const key = controlKey(control);
    if (this.#entries.some((e) => e.position === position && e.key === key)) return;
    this.#entries.push({ position, control, key });
    if (this.#entries.length > this.maxKept) this.#entries.shift();
  }

  /** Drops the controls at or before `position`: the audio before them is committed. */
  dropThrough(position) {
    this.#entries = this.#entries.filter((e) => e.position > position);
  }

  /**
   * What a resumed call sends first: the kept audio `chunks` (starting at `fromByte`) with
   * each kept control after `fromByte` at its place, as `{audio}` and `{control}` requests.
   */
  resend(chunks, fromByte) {
    const controls = this.#entries.filter((e) => e.position > fromByte);
    const out = [];
    let position = fromByte;
    let next = 0;
    for (let chunk of chunks) {
      while (next < controls.length && controls[next].position < position + chunk.length) {
        const cut = controls[next].position - position;
        if (cut > 0) out.push({ audio: chunk.subarray(0, cut) });
        out.push({ control: controls[next].control });
        chunk = chunk.subarray(cut);
        position += cut;
        next += 1;
      }
      if (chunk.length > 0) out.push({ audio: chunk });
      position += chunk.length;
    }
    // Controls at the end of the kept audio (given after its last byte).
    for (; next < controls.length && controls[next].position <= position; next += 1) {
      out.push({ control: controls[next].control });
    }
    return out;
  }
}
