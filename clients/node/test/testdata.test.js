// The shared test vectors (clients/testdata, see its README.md): every client language reads
// them, so all four agree on what they send, print, and resend after a failure.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import {
  KeptAudio, KeptControls, encodingEnum, frameBytes, keepFromByte, planFile, planResume,
  responseFromJSON, shouldResume, splitChunks, statusDetails, statusName,
} from '../lib/index.js';
import { buildConfig, errorLine, parseFlags, render } from '../transcribe.js';

const TESTDATA = new URL('../../testdata/', import.meta.url);
const read = (path) => readFileSync(new URL(path, TESTDATA));
const readJSON = (path) => JSON.parse(read(path).toString('utf8'));
const lines = (path) => read(path).toString('utf8').split('\n').filter((line) => line !== '');

const { chunk_ms: chunkMs, plans } = readJSON('wav/plans.json');

for (const expected of plans) {
  test(`send plan: ${expected.file}`, () => {
    const data = read(`wav/${expected.file}`);
    const plan = planFile(data, { encoding: null, sampleRate: 0, chunkMs });
    const config = buildConfig(parseFlags(['--file', expected.file]), plan);
    assert.equal(config.encoding, expected.encoding);
    assert.equal(config.sampleRate, expected.sample_rate);
    assert.equal(config.channels, expected.channels > 1 ? expected.channels : 0);
    assert.equal(plan.channels, expected.channels);
    assert.equal(plan.payload.byteOffset - data.byteOffset, expected.payload_offset);
    assert.equal(plan.payload.length, expected.payload_bytes);
    assert.equal(plan.frame, expected.frame_bytes);
    assert.equal(plan.rate, expected.bytes_per_second);
    assert.equal(plan.chunkSize, expected.chunk_bytes);
    assert.equal(frameBytes({ ...config, channels: plan.channels }) !== null, expected.resumable);
  });
}

const recorded = lines('responses/recorded.jsonl').map(responseFromJSON);

test('a recorded stream prints the expected text, with and without --interim', () => {
  for (const [interim, file] of [[false, 'expected.txt'], [true, 'expected-interim.txt']]) {
    const printed = recorded.map((r) => render(r, { interim, json: false })).filter((l) => l !== null);
    assert.deepEqual(printed, lines(`responses/${file}`), file);
  }
});

test('a recorded stream prints the expected --json lines', () => {
  const printed = recorded.map((r) => JSON.parse(render(r, { interim: false, json: true })));
  assert.deepEqual(printed, lines('responses/expected.jsonl').map((line) => JSON.parse(line)));
});

for (const expected of readJSON('errors.json').errors) {
  test(`error status: ${expected.code} ${expected.reason}`, () => {
    const details = statusDetails(Buffer.from(expected.status_details_bin, 'base64'));
    assert.equal(statusName(expected.code_number), expected.code);
    assert.equal(details.reason, expected.reason);
    assert.equal(details.domain, expected.domain);
    if (expected.resume_point === null) {
      assert.equal(details.resumePoint, null);
    } else {
      // proto3 JSON leaves out zeros: compare the full objects with the defaults filled in.
      const want = { committedSeconds: 0, committedBytes: '0', receivedSeconds: 0, ...expected.resume_point };
      assert.deepEqual({ ...details.resumePoint }, want);
    }
    assert.equal(shouldResume(expected.code_number, details.resumePoint), expected.resumable);
    assert.equal(errorLine(expected.code, expected.message), expected.stderr);
    assert.equal(expected.exit_code, 1);
  });
}

const { resume, commit } = readJSON('resume.json');

for (const c of resume) {
  test(`resume: ${c.name}`, () => {
    const frame = frameBytes({ encoding: c.encoding, sampleRate: c.sample_rate, channels: c.channels });
    const plan = planResume({
      frameBytes: frame,
      streamStartByte: c.stream_start_byte,
      keptFromByte: c.kept_from_byte,
      sentBytes: c.sent_bytes,
      resumePoint: { committedSeconds: 0, committedBytes: '0', ...c.resume_point },
    });
    const want = c.expected.resumable
      ? {
        resumable: true,
        startOffsetSeconds: c.expected.start_offset_seconds,
        resendFromByte: c.expected.resend_from_byte,
        resendBytes: c.expected.resend_bytes,
      }
      : { resumable: false };
    assert.deepEqual(plan, want, c.why);
    if (frame !== null) assert.equal(frame, c.frame_bytes);
  });
}

for (const c of commit) {
  test(`commit: ${c.name}`, () => {
    const byte = keepFromByte({
      streamStartByte: c.stream_start_byte,
      streamStartOffsetSeconds: c.stream_start_offset_seconds,
      committedSeconds: c.committed_seconds,
      sampleRate: c.sample_rate,
      frameBytes: c.frame_bytes,
    });
    assert.equal(byte, c.expected_keep_from_byte);
  });
}

test('encoding names map to the proto enum', () => {
  assert.equal(encodingEnum('amr-nb'), 'AUDIO_ENCODING_AMR_NB');
  assert.equal(encodingEnum(null), 'AUDIO_ENCODING_UNSPECIFIED');
});

// controls.json: the first call writes the items in order; a resume from the ResumePoint sends
// the kept audio with each Finalize after the resend point again at its place. Audio is given
// in pieces of several sizes, so that the merging, not the cutting, makes the ranges.
const { controls: controlCases } = readJSON('controls.json');

/** Requests as the vectors list them: audio as [start, end] byte ranges, adjacent ones merged. */
function asSent(requests, fromByte) {
  const out = [];
  let position = fromByte;
  for (const request of requests) {
    if (request.control !== undefined) {
      out.push({ control: request.control });
      continue;
    }
    const last = out.at(-1);
    const end = position + request.audio.length;
    if (last?.audio !== undefined && last.audio[1] === position) last.audio[1] = end;
    else out.push({ audio: [position, end] });
    position = end;
  }
  return out;
}

for (const c of controlCases) {
  for (const piece of [32768, 1000, 7]) {
    test(`controls: ${c.name} (pieces of ${piece} bytes)`, () => {
      const frame = frameBytes({ encoding: c.encoding, sampleRate: c.sample_rate, channels: c.channels });
      assert.notEqual(frame, null);
      const kept = new KeptAudio(1 << 20);
      const controls = new KeptControls();
      const written = [];
      for (const item of c.items) {
        if (item.control !== undefined) {
          controls.add(kept.sentBytes, item.control);
          written.push({ control: item.control });
          continue;
        }
        for (const chunk of splitChunks(Buffer.alloc(item.audio), piece)) {
          kept.append(chunk);
          written.push({ audio: chunk });
        }
      }
      assert.deepEqual(asSent(written, 0), c.sent);
      const plan = planResume({
        frameBytes: frame, streamStartByte: 0, keptFromByte: kept.keptFromByte,
        sentBytes: kept.sentBytes, resumePoint: c.resume_point,
      });
      assert.equal(plan.resumable, true);
      controls.dropThrough(plan.resendFromByte);
      const resent = controls.resend(kept.from(plan.resendFromByte), plan.resendFromByte);
      assert.deepEqual(asSent(resent, plan.resendFromByte), c.resent);
    });
  }
}
