// Audio sources for a transcription stream: WAV parsing, chunking, real-time pacing, HTTP.
//
// The plain functions (parseWav, bytesPerSecond, planFile, planUrl) do no I/O; the async
// generators produce Buffers ready to be sent as `StreamTranscribeRequest.audio`.
//
// The WAV header is read here rather than with an npm package: the maintained readers
// (wavefile, node-wav) take a whole file and decode its samples, while this only needs the
// header's few fields and the data chunk's position, also for a WAV written to a pipe whose
// data size is unknown (0 or 0xFFFFFFFF). The rules are clients/testdata/README.md's.

import { setTimeout as sleep } from 'node:timers/promises';

/** Pacing rate for audio whose byte rate is unknown without decoding it (MP3, Ogg... from a
 * file): 128 kbit/s, a common MP3 bit rate. */
export const FALLBACK_BYTES_PER_SECOND = 16000;

/** Deepgram's encoding names, accepted by `--encoding`. */
export const ENCODINGS = [
  'linear16', 'linear32', 'mulaw', 'alaw', 'flac', 'amr-nb', 'amr-wb', 'opus', 'ogg-opus',
  'speex', 'g729',
];

const SAMPLE_WIDTHS = { linear16: 2, linear32: 4, mulaw: 1, alaw: 1 };
const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/** The bytes are not a WAV file this module can read. */
export class WavError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WavError';
  }
}

/**
 * Reads the RIFF/WAVE header of `data` (a whole file, or at least up to its data chunk).
 * A data chunk whose declared size is missing or larger than the file (as streaming WAV
 * writers leave it) is taken to run to the end of `data`.
 * @param {Buffer} data
 */
export function parseWav(data) {
  if (data.length < 12 || data.toString('latin1', 0, 4) !== 'RIFF'
      || data.toString('latin1', 8, 12) !== 'WAVE') {
    throw new WavError('not a RIFF/WAVE file');
  }
  let fmt = null;
  let pos = 12;
  while (pos + 8 <= data.length) {
    const id = data.toString('latin1', pos, pos + 4);
    const size = data.readUInt32LE(pos + 4);
    const body = pos + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > data.length) throw new WavError('truncated fmt chunk');
      fmt = {
        formatTag: data.readUInt16LE(body),
        channels: data.readUInt16LE(body + 2),
        sampleRate: data.readUInt32LE(body + 4),
        byteRate: data.readUInt32LE(body + 8),
        blockAlign: data.readUInt16LE(body + 12),
        bitsPerSample: data.readUInt16LE(body + 14),
      };
      if (fmt.formatTag === WAVE_FORMAT_EXTENSIBLE && size >= 40 && body + 26 <= data.length) {
        fmt.formatTag = data.readUInt16LE(body + 24); // first two bytes of the sub-format GUID
      }
    } else if (id === 'data') {
      if (fmt === null) throw new WavError('data chunk before fmt chunk');
      if (fmt.channels === 0 || fmt.sampleRate === 0) {
        throw new WavError('fmt chunk has no channels or no sample rate');
      }
      const available = data.length - body;
      const dataSize = size > 0 && size <= available ? size : available;
      return {
        ...fmt,
        dataOffset: body,
        dataSize,
        isIntegerPcm: fmt.formatTag === WAVE_FORMAT_PCM,
        isLinear16: fmt.formatTag === WAVE_FORMAT_PCM && fmt.bitsPerSample === 16,
      };
    }
    pos = body + size + (size & 1); // chunks are padded to an even size
  }
  throw new WavError('no data chunk');
}

/** The `AudioEncoding` enum name of a Deepgram encoding name (`linear16`), or UNSPECIFIED. */
export function encodingEnum(encoding) {
  if (encoding === null || encoding === undefined) return 'AUDIO_ENCODING_UNSPECIFIED';
  return `AUDIO_ENCODING_${encoding.toUpperCase().replace(/-/g, '_')}`;
}

/** Byte rate of raw audio in `encoding` (a Deepgram name such as `linear16`), or null. */
export function bytesPerSecond(encoding, sampleRate, channels = 1) {
  const width = SAMPLE_WIDTHS[String(encoding).toLowerCase()];
  if (width === undefined || !(sampleRate > 0)) return null;
  return width * sampleRate * Math.max(channels, 1);
}

/**
 * Decides what to send for a file's bytes, given the `--encoding`/`--sample-rate` flags
 * (the same rules as every other client; see README.md).
 * @param {Buffer} data
 * @param {{encoding: string|null, sampleRate: number, chunkMs: number}} flags
 */
export function planFile(data, { encoding, sampleRate, chunkMs }) {
  let wav = null;
  try {
    wav = parseWav(data);
  } catch (err) {
    if (!(err instanceof WavError)) throw err;
  }
  let channels = 0;
  let payload = data;
  let rate;
  let frame = 1;
  if (encoding === null && wav !== null && wav.isLinear16) encoding = 'linear16';
  if (encoding !== null) {
    if (wav !== null) {
      payload = data.subarray(wav.dataOffset, wav.dataOffset + wav.dataSize);
      sampleRate = sampleRate || wav.sampleRate;
      channels = wav.channels;
    }
    rate = bytesPerSecond(encoding, sampleRate, channels)
      || (wav !== null ? wav.byteRate : 0) || FALLBACK_BYTES_PER_SECOND;
    if (sampleRate) frame = bytesPerSecond(encoding, 1, channels) || 1;
  } else {
    // Integer PCM of another width has a meaningful byte rate; float or compressed audio not.
    rate = (wav !== null && wav.isIntegerPcm ? wav.byteRate : 0) || FALLBACK_BYTES_PER_SECOND;
  }
  const chunkSize = Math.max(frame, Math.floor(Math.floor((rate * chunkMs) / 1000) / frame) * frame);
  return { encoding, sampleRate, channels, rate, chunkSize, frame, payload };
}

/** What to send for an HTTP stream: its bytes as they arrive, paced if the rate is known. */
export function planUrl({ encoding, sampleRate }) {
  const rate = encoding !== null ? bytesPerSecond(encoding, sampleRate) : null;
  return { encoding, sampleRate, channels: 0, rate, chunkSize: 0, payload: null };
}

/**
 * Yields the bytes of `readable` (stdin, a pipe) as they arrive, in pieces of at most
 * `maxBytes` and whole `frame`s (a partial frame waits for the rest). Nothing is paced: the
 * source sets the pace.
 * @param {AsyncIterable<Buffer>} readable
 * @param {number} maxBytes
 * @param {number} [frame]
 */
export async function* readableChunks(readable, maxBytes, frame = 1) {
  if (!(maxBytes >= frame && frame > 0)) throw new RangeError('maxBytes must hold a frame');
  let rest = Buffer.alloc(0);
  for await (const data of readable) {
    let buffer = rest.length > 0 ? Buffer.concat([rest, data]) : Buffer.from(data);
    const whole = buffer.length - (buffer.length % frame);
    for (let start = 0; start < whole; start += maxBytes) {
      yield buffer.subarray(start, Math.min(start + maxBytes, whole));
    }
    rest = buffer.subarray(whole);
    buffer = null;
  }
  if (rest.length > 0) yield rest; // a truncated last frame: the gateway says what it makes of it
}

/** Cuts `data` into chunks of `size` bytes (the last one may be shorter). */
export function* splitChunks(data, size) {
  if (!(size > 0)) throw new RangeError('chunk size must be positive');
  for (let start = 0; start < data.length; start += size) {
    yield data.subarray(start, start + size);
  }
}

/**
 * Yields `chunks` no faster than `rate` bytes per second of wall-clock time: each chunk is
 * released when the audio before it has had time to play. Ends quietly when `signal` aborts.
 * @param {Iterable<Buffer>|AsyncIterable<Buffer>} chunks
 * @param {number} rate
 * @param {AbortSignal} [signal]
 */
export async function* pace(chunks, rate, signal) {
  if (!(rate > 0)) throw new RangeError('rate must be positive');
  const start = performance.now();
  let sent = 0;
  for await (const chunk of chunks) {
    const delay = start + (sent / rate) * 1000 - performance.now();
    if (delay > 0) {
      try {
        await sleep(delay, undefined, { signal });
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
    }
    if (signal?.aborted) return;
    yield chunk;
    sent += chunk.length;
  }
}

/**
 * Yields the body of an HTTP(S) response as it arrives (a radio stream, a file), using
 * Node's built-in fetch. Ends quietly when `signal` aborts; throws on an HTTP error status.
 * @param {string} url
 * @param {AbortSignal} [signal]
 */
export async function* httpChunks(url, signal) {
  let response;
  try {
    response = await fetch(url, { signal, headers: { 'user-agent': 'transcribe-client' } });
  } catch (err) {
    if (signal?.aborted) return;
    throw err;
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status} ${response.statusText}`.trim());
  }
  if (response.body === null) return;
  try {
    for await (const chunk of response.body) {
      yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  } catch (err) {
    if (signal?.aborted) return;
    throw err;
  }
}
