// Unit tests of the pure parts: WAV parsing, file plans, the JSON mapping, output lines.
// Run with `npm test` (node --test); the end-to-end tests live in tests/clients/.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseWav, planFile, planUrl, splitChunks, WavError } from '../lib/audio.js';
import { jsonName, toJSON } from '../lib/json.js';
import { buildConfig, parseFlags, render } from '../transcribe.js';

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

test('a non-PCM WAV is sent whole as containerised audio, paced at its byte rate', () => {
  const data = wav({ format: 3, bits: 32 });
  const plan = planFile(data, { encoding: null, sampleRate: 0, chunkMs: 100 });
  assert.equal(plan.encoding, null);
  assert.equal(plan.rate, 64000);
  assert.equal(plan.payload.length, data.length);
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

test('JSON names follow protoc and defaults are left out, presence fields kept', () => {
  assert.equal(jsonName('last_word_end_seconds'), 'lastWordEndSeconds');
  assert.equal(jsonName('sha256'), 'sha256');
  const line = toJSON({
    response: 'session_started',
    session_started: {
      session_id: 's', upstream_request_id: '',
      config: {
        model: '', encoding: 'AUDIO_ENCODING_LINEAR16', sample_rate: 16000, channels: 0,
        redact: [], extra: {}, interim_results: false, _interim_results: 'interim_results',
      },
    },
  });
  assert.equal(line, '{"sessionStarted":{"sessionId":"s","config":{"encoding":'
    + '"AUDIO_ENCODING_LINEAR16","sampleRate":16000,"interimResults":false}}}');
});

test('render prints finals, interims with the prefix, and nothing for empty transcripts', () => {
  const result = (text, final) => ({
    response: 'result', result: { is_final: final, alternatives: [{ transcript: text }] },
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
    model: '', language: 'en', encoding: 'AUDIO_ENCODING_AMR_NB', sample_rate: 8000,
    channels: 0, interim_results: true,
  });
});
