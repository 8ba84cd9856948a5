// Unit tests of the pure parts: WAV parsing, file plans, flags, output lines, the kept audio
// and the backoff. Run with `npm test` (node --test); testdata.test.js reads the vectors shared
// with the other languages, and the end-to-end tests live in tests/clients/.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  KeptAudio, MAX_CHUNK_BYTES, backoffMs, parseWav, planFile, planUrl, readableChunks, sendUntil, splitChunks,
  WavError,
} from '../lib/index.js';
import { TOKEN_ENV, buildConfig, parseFlags, render } from '../transcribe.js';

function wav({ rate = 16000, channels = 1, bits = 16, format = 1, samples = 800 } = {}) {
  const data = Buffer.alloc(samples * channels * (bits / 8), 1);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(format, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels * (bits / 8), 28);
  header.writeUInt16LE(channels * (bits / 8), 32);
  header.writeUInt16LE(bits, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

test('a 16-bit PCM WAV is sent as linear16 without its header, at its byte rate', () => {
  const plan = planFile(wav({ rate: 8000, channels: 2 }), { encoding: null, sampleRate: 0, chunkMs: 50 });
  assert.equal(plan.encoding, 'linear16');
  assert.equal(plan.sampleRate, 8000);
  assert.equal(plan.channels, 2);
  assert.equal(plan.rate, 32000);
  assert.equal(plan.chunkSize, 1600);
  assert.equal(plan.payload.length, 800 * 4);
});

test('a WAV that is not 16-bit PCM is sent whole; only integer PCM keeps its byte rate', () => {
  const float = wav({ format: 3, bits: 32 });
  const plan = planFile(float, { encoding: null, sampleRate: 0, chunkMs: 100 });
  assert.deepEqual([plan.encoding, plan.rate, plan.payload.length], [null, 16000, float.length]);
  const pcm8 = planFile(wav({ bits: 8, rate: 8000 }), { encoding: null, sampleRate: 0, chunkMs: 100 });
  assert.deepEqual([pcm8.encoding, pcm8.rate], [null, 8000]);
});

test('an unknown file is containerised at the fallback rate; flags override the header', () => {
  const other = planFile(Buffer.from('ID3...'), { encoding: null, sampleRate: 0, chunkMs: 50 });
  assert.deepEqual([other.encoding, other.sampleRate, other.rate], [null, 0, 16000]);
  const forced = planFile(wav(), { encoding: 'linear16', sampleRate: 500000, chunkMs: 50 });
  assert.equal(forced.sampleRate, 500000);
  assert.deepEqual(planUrl({ encoding: null, sampleRate: 0 }).rate, null);
});

test('parseWav rejects what is not a WAV file', () => {
  assert.throws(() => parseWav(Buffer.from('RIFF1234WAVE')), WavError);
  assert.throws(() => parseWav(Buffer.from('OggS')), WavError);
});

test('splitChunks cuts into fixed-size pieces', () => {
  assert.deepEqual([...splitChunks(Buffer.alloc(5), 2)].map((c) => c.length), [2, 2, 1]);
});

test('render prints finals, interims with the prefix, and nothing for empty transcripts', () => {
  const result = (text, final) => ({
    response: 'result', result: { isFinal: final, alternatives: [{ transcript: text }] },
  });
  assert.equal(render(result(' Hello. ', true), { interim: false, json: false }), 'Hello.');
  assert.equal(render(result('hel', false), { interim: true, json: false }), '~ hel');
  assert.equal(render(result('hel', false), { interim: false, json: false }), null);
  assert.equal(render(result('', true), { interim: true, json: false }), null);
  assert.equal(render({ response: 'summary', summary: {} }, { interim: true, json: false }), null);
});

test('flags become a StreamingConfig with only the options asked for', () => {
  const flags = parseFlags(['--file', 'x.wav', '--interim', '--language', 'en']);
  const config = buildConfig(flags, { encoding: 'amr-nb', sampleRate: 8000, channels: 1 });
  assert.deepEqual(config, {
    model: '', language: 'en', encoding: 'AUDIO_ENCODING_AMR_NB', sampleRate: 8000,
    channels: 0, interimResults: true,
  });
});

test('the token comes from --token, else from the environment', () => {
  const saved = process.env[TOKEN_ENV];
  try {
    process.env[TOKEN_ENV] = 'from-env';
    assert.equal(parseFlags(['--file', 'x.wav']).token, 'from-env');
    assert.equal(parseFlags(['--file', 'x.wav', '--token', 'flag']).token, 'flag');
    delete process.env[TOKEN_ENV];
    assert.equal(parseFlags(['--file', 'x.wav']).token, null);
  } finally {
    if (saved === undefined) delete process.env[TOKEN_ENV];
    else process.env[TOKEN_ENV] = saved;
  }
});

test('stdin needs the raw encoding and rate; resume is on unless --no-resume', () => {
  assert.throws(() => parseFlags(['--file', '-']), /needs --encoding and --sample-rate/);
  assert.throws(() => parseFlags(['--file', '-', '--encoding', 'linear16']), /needs/);
  const flags = parseFlags(['--file', '-', '--encoding', 'linear16', '--sample-rate', '16000']);
  assert.deepEqual([flags.file, flags.encoding, flags.sampleRate, flags.resume], ['-', 'linear16', 16000, true]);
  assert.equal(parseFlags(['--file', 'x.wav', '--no-resume']).resume, false);
});

test('readableChunks yields what arrives, in whole frames of at most maxBytes', async () => {
  async function* arrivals() {
    yield Buffer.from([1, 2, 3]); // one frame and a half
    yield Buffer.from([4, 5, 6, 7, 8, 9, 10, 11, 12]);
    yield Buffer.from([13]); // a truncated last frame
  }
  const out = [];
  for await (const chunk of readableChunks(arrivals(), 4, 2)) out.push([...chunk]);
  assert.deepEqual(out, [[1, 2], [3, 4, 5, 6], [7, 8, 9, 10], [11, 12], [13]]);
});

test('KeptAudio keeps at most maxBytes, drops committed bytes, and gives back the rest', () => {
  const kept = new KeptAudio(6);
  const source = Buffer.from([0, 1, 2, 3]);
  kept.append(source);
  source.fill(9); // the caller reuses its buffer: the kept copy does not change
  kept.append(Buffer.from([4, 5, 6, 7]));
  assert.deepEqual([kept.sentBytes, kept.keptFromByte, kept.size], [8, 2, 6]);
  assert.deepEqual(Buffer.concat(kept.from(3)), Buffer.from([3, 4, 5, 6, 7]));
  kept.dropBefore(5);
  assert.deepEqual([kept.keptFromByte, kept.size], [5, 3]);
  kept.dropBefore(1); // already dropped: nothing changes
  assert.equal(kept.keptFromByte, 5);
  assert.throws(() => kept.from(4), RangeError);
  assert.deepEqual(kept.from(8), []);
  const none = new KeptAudio(0);
  none.append(Buffer.from([1, 2]));
  assert.deepEqual([none.sentBytes, none.keptFromByte, none.size], [2, 2, 0]);
});

test('backoff grows by the multiplier up to the cap, with jitter in its upper half', () => {
  const settings = { initialMs: 100, maxMs: 1000, multiplier: 2 };
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => backoffMs(a, settings, () => 1)), [100, 200, 400, 800, 1000]);
  assert.deepEqual([1, 5].map((a) => backoffMs(a, settings, () => 0)), [50, 500]);
});

test('audio messages end on whole frames, at most the limit, unless the end or a control comes first', () => {
  // [position, end, frame, limit, ended, controlAt, want]: the table the Go library checks.
  const cases = [
    [0, 5, 4, 100, false, null, 4], // a frame cut short waits
    [4, 5, 4, 100, false, null, 4], // nothing whole to send
    [4, 5, 4, 100, true, null, 5], // the end goes as it is
    [0, 100, 4, 10, false, null, 8], // the limit, down to a frame
    [0, 100, 4, 10, false, 3, 3], // a control inside a frame keeps its place
    [0, 100, 4, 10, false, 50, 8], // a later control does not matter yet
    [0, 100, 1, 10, false, null, 10], // containerised: any byte
    [5, 12, 2, 100, false, null, 12], // frames count from the first byte, not from `position`
  ];
  for (const [position, end, frame, limit, ended, controlAt, want] of cases) {
    assert.equal(sendUntil(position, end, frame, limit, ended, controlAt), want, `${[position, end, frame, limit]}`);
  }
  assert.equal(MAX_CHUNK_BYTES, 32 * 1024);
});
