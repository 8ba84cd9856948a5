#!/usr/bin/env node
// The sample program: stream a file or an HTTP audio stream through the gateway and print the
// transcripts. Same flags and output in every client language (see README.md):
//
// - a final, non-empty transcript is printed alone on its line;
// - with --interim, an interim transcript is printed as `~ ` followed by the text;
// - with --json, every response is printed instead, one proto3 JSON object per line;
// - `--file -` streams stdin as it arrives (raw audio: --encoding and --sample-rate);
// - a stream the gateway ends for a resumable reason (a drain) is resumed on a new call
//   unless --no-resume; each resume is noted on stderr as `resuming: ...`;
// - a failure prints `error: <STATUS_NAME>: <message>` to stderr and exits with 1;
// - the first Ctrl+C ends the audio (half-close: the remaining results still print, exit 0),
//   a second one cancels the call and exits with 130.

import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import {
  ENCODINGS, bytesPerSecond, encodingEnum, httpChunks, pace, planFile, planUrl, readableChunks,
  splitChunks,
} from './lib/audio.js';
import { DEFAULT_ADDR } from './lib/defaults.js';

/** The environment variable a token is read from when --token is not given. */
export const TOKEN_ENV = 'TRANSCRIBE_TOKEN';

export const DEFAULT_CHUNK_MS = 50;
export const INTERIM_PREFIX = '~ ';
const EXIT_OK = 0;
const EXIT_ERROR = 1;
const EXIT_USAGE = 2;
const EXIT_INTERRUPTED = 130;

const USAGE = `usage: transcribe.js (--file PATH | --url URL) [--addr HOST:PORT] [--model MODEL]
                     [--language LANG] [--interim] [--smart-format] [--diarize]
                     [--token TOKEN] [--tls] [--ca-file PATH] [--fast] [--json]
                     [--encoding ENCODING] [--sample-rate HZ] [--chunk-ms MS]
                     [--no-resume]

Stream audio to the transcription gateway and print the transcripts.

  --addr HOST:PORT     gateway address (${DEFAULT_ADDR})
  --file PATH          audio file to stream (WAV, MP3, raw...); - for stdin, as it
                       arrives (raw audio: needs --encoding and --sample-rate)
  --url URL            HTTP(S) audio stream to relay (e.g. an internet radio)
  --model MODEL        model name, e.g. nova-3
  --language LANG      BCP-47 language tag, e.g. en-US
  --interim            also print interim results, prefixed with "${INTERIM_PREFIX}"
  --smart-format       turn on smart_format
  --diarize            turn on diarization
  --token TOKEN        client token, sent as 'authorization: Bearer TOKEN'
                       (default: $${TOKEN_ENV})
  --tls                use TLS (default trust roots)
  --ca-file PATH       PEM roots to trust for TLS (implies --tls)
  --fast               send as fast as possible, no pacing
  --json               print every response as JSON lines
  --encoding ENCODING  raw audio encoding: ${ENCODINGS.join(', ')}
                       (default: from a WAV header, else containerised)
  --sample-rate HZ     sample rate of raw audio
  --chunk-ms MS        milliseconds of audio per message (${DEFAULT_CHUNK_MS})
  --no-resume          do not resume a stream the gateway ends for a drain`;

class UsageError extends Error {}

/** Parses the flags (the same in every client language). */
export function parseFlags(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      addr: { type: 'string', default: DEFAULT_ADDR },
      file: { type: 'string' },
      url: { type: 'string' },
      model: { type: 'string', default: '' },
      language: { type: 'string', default: '' },
      interim: { type: 'boolean', default: false },
      'smart-format': { type: 'boolean', default: false },
      diarize: { type: 'boolean', default: false },
      token: { type: 'string' },
      tls: { type: 'boolean', default: false },
      'ca-file': { type: 'string' },
      fast: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      encoding: { type: 'string' },
      'sample-rate': { type: 'string', default: '0' },
      'chunk-ms': { type: 'string', default: String(DEFAULT_CHUNK_MS) },
      'no-resume': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return { help: true };
  if ((values.file === undefined) === (values.url === undefined)) {
    throw new UsageError('exactly one of --file and --url is required');
  }
  const encoding = values.encoding === undefined ? null : values.encoding.toLowerCase();
  if (encoding !== null && !ENCODINGS.includes(encoding)) {
    throw new UsageError(`--encoding: invalid choice '${values.encoding}'`);
  }
  const sampleRate = integer('--sample-rate', values['sample-rate'], 0, 0xffffffff);
  if (values.file === '-' && (encoding === null || sampleRate === 0)) {
    throw new UsageError('--file - (stdin) needs --encoding and --sample-rate');
  }
  return {
    addr: values.addr,
    file: values.file ?? null,
    url: values.url ?? null,
    model: values.model,
    language: values.language,
    interim: values.interim,
    smartFormat: values['smart-format'],
    diarize: values.diarize,
    token: values.token ?? (process.env[TOKEN_ENV] || null),
    tls: values.tls,
    caFile: values['ca-file'] ?? null,
    fast: values.fast,
    json: values.json,
    encoding,
    sampleRate,
    chunkMs: integer('--chunk-ms', values['chunk-ms'], 1, 3600000),
    resume: !values['no-resume'],
  };
}

/** The session's `StreamingConfig` from the flags and the audio plan. */
export function buildConfig(flags, plan) {
  const config = {
    model: flags.model,
    language: flags.language,
    encoding: encodingEnum(plan.encoding),
    sampleRate: plan.sampleRate,
    channels: plan.channels > 1 ? plan.channels : 0,
  };
  if (flags.interim) config.interimResults = true;
  if (flags.smartFormat) config.smartFormat = true;
  if (flags.diarize) config.diarize = true;
  return config;
}

/** The output line for one response, or null when it prints nothing. */
export function render(response, { interim, json }) {
  if (json) return JSON.stringify(response); // the proto3 JSON mapping (lib/contract.js)
  if (response.response !== 'result') return null;
  const result = response.result;
  const text = (result.alternatives?.[0]?.transcript ?? '').trim();
  if (text === '') return null;
  if (result.isFinal) return text;
  return interim ? INTERIM_PREFIX + text : null;
}

/** Runs the sample program; resolves to the process exit code. */
export async function main(argv = process.argv.slice(2)) {
  let flags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    if (!(err instanceof UsageError) && !String(err?.code).startsWith('ERR_PARSE_ARGS')) throw err;
    const synopsis = USAGE.slice(0, USAGE.indexOf('\n\n'));
    process.stderr.write(`${synopsis}\ntranscribe.js: error: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }

  const stopAudio = new AbortController();
  const cancelCall = new AbortController();
  let presses = 0;
  const onInterrupt = () => {
    presses += 1;
    if (presses === 1) stopAudio.abort(); // end the audio: half-close, then print what is left
    else cancelCall.abort(); // cancel the call
  };
  process.on('SIGINT', onInterrupt);
  // gRPC is loaded only now, so that a Ctrl+C during its (slow) import already counts.
  const { TranscribeError, transcribe } = await import('./lib/client.js');
  try {
    let plan;
    let chunks;
    const label = flags.url ?? flags.file;
    if (flags.url !== null) {
      plan = planUrl(flags);
      chunks = httpChunks(flags.url, stopAudio.signal);
    } else if (flags.file === '-') {
      plan = planStdin(flags);
      chunks = readableChunks(process.stdin, plan.chunkSize, plan.frame);
    } else {
      let data;
      try {
        data = readFileSync(flags.file);
      } catch (err) {
        return fail('INVALID_ARGUMENT', `cannot read ${flags.file}: ${err.message}`);
      }
      plan = planFile(data, flags);
      chunks = splitChunks(plan.payload, plan.chunkSize);
    }
    if (plan.rate !== null && !flags.fast && plan.paced !== false) chunks = pace(chunks, plan.rate, stopAudio.signal);
    const source = inputErrors(until(stopAudio.signal, chunks), label);
    // Fail on an unreachable URL before opening the call.
    const first = await source.next();
    if (first.done && stopAudio.signal.aborted) return EXIT_OK;
    const responses = transcribe(flags.addr, prepend(first, source), buildConfig(flags, plan), {
      token: flags.token,
      tls: flags.tls,
      caFile: flags.caFile,
      signal: cancelCall.signal,
      resume: flags.resume ? {} : false,
      resuming: ({ error, attempt, resumePoint }) => process.stderr.write(
        `resuming: ${error.message} (attempt ${attempt}, from ${resumePoint.committedSeconds} s)\n`,
      ),
    });
    for await (const response of responses) {
      const line = render(response, flags);
      if (line !== null) process.stdout.write(`${line}\n`);
    }
    if (presses >= 2) return interrupted();
    return EXIT_OK;
  } catch (err) {
    if (presses >= 2) return interrupted();
    if (err instanceof TranscribeError) return fail(err.statusName, err.details);
    if (err instanceof InputError) return fail('UNAVAILABLE', err.message);
    throw err;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

class InputError extends Error {}

/** Raw audio on stdin: sent as it arrives, in chunks of at most --chunk-ms. */
function planStdin({ encoding, sampleRate, chunkMs }) {
  const rate = bytesPerSecond(encoding, sampleRate);
  const frame = bytesPerSecond(encoding, 1) ?? 1;
  const chunkSize = Math.max(frame, Math.floor(Math.floor(((rate ?? 16000) * chunkMs) / 1000) / frame) * frame);
  return { encoding, sampleRate, channels: 0, rate, chunkSize, frame, paced: false, payload: null };
}

async function* inputErrors(chunks, label) {
  try {
    yield* chunks;
  } catch (err) {
    const reason = err?.cause?.message ?? err?.message ?? String(err);
    throw new InputError(`cannot read ${label}: ${reason}`, { cause: err });
  }
}

async function* until(signal, chunks) {
  for await (const chunk of chunks) {
    if (signal.aborted) return;
    yield chunk;
  }
}

async function* prepend(first, rest) {
  if (!first.done) yield first.value;
  yield* rest;
}

function integer(flag, text, min, max) {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(`${flag}: expected an integer from ${min} to ${max}, got '${text}'`);
  }
  return value;
}

/** The stderr line for a failure (the same in every client language). */
export function errorLine(status, message) {
  return `error: ${status}: ${message}\n`;
}

function fail(status, message) {
  process.stderr.write(errorLine(status, message));
  return EXIT_ERROR;
}

function interrupted() {
  process.stderr.write('error: CANCELLED: interrupted\n');
  return EXIT_INTERRUPTED;
}

// Run when executed (node transcribe.js, npx transcribe), not when imported by tests.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // stdout closed by its reader (e.g. `| head`): nobody reads any more.
  process.stdout.on('error', (err) => process.exit(err.code === 'EPIPE' ? EXIT_ERROR : 70));
  process.exit(await main());
}
