// A resume over real gRPC on loopback: a fake gateway fails its first call UNAVAILABLE with a
// ResumePoint, as a draining replica does, and the client resends the uncommitted audio with
// each Finalize after the resend point at its place (clients/testdata/README.md, controls.json).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import grpc from '@grpc/grpc-js';

import { METHOD_PATH, contract } from '../lib/contract.js';
import { TranscribeClient } from '../lib/index.js';

const COMMITTED_BYTES = 32000;
const FAIL_AFTER_BYTES = 40000;

/** Starts the fake; `calls` gets, per call, its audio bytes and its controls as `kind@byte`. */
async function startFake() {
  const { Request, Response } = contract();
  const calls = [];
  const server = new grpc.Server();
  server.addService({
    StreamTranscribe: {
      path: METHOD_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: (r) => Buffer.from(Request.encode(r).finish()),
      requestDeserialize: (bytes) => Request.toObject(Request.decode(bytes), { oneofs: true }),
      responseSerialize: (r) => Buffer.from(Response.encode(Response.fromObject(r)).finish()),
      responseDeserialize: (bytes) => Response.decode(bytes),
    },
  }, {
    StreamTranscribe(call) {
      const index = calls.length;
      const seen = { bytes: 0, controls: [] };
      calls.push(seen);
      let failed = false;
      call.on('data', (request) => {
        if (failed) return;
        if (request.config !== undefined) {
          call.write({ sessionStarted: { sessionId: 's' } });
        } else if (request.control !== undefined) {
          seen.controls.push(`${request.control.command}@${seen.bytes}`);
        } else {
          seen.bytes += request.audio.length;
          if (index === 0 && seen.bytes >= FAIL_AFTER_BYTES) {
            failed = true;
            call.write({ result: { isFinal: true, durationSeconds: 1, alternatives: [{ transcript: 'one' }] } });
            call.emit('error', drainingError());
          }
        }
      });
      call.on('end', () => {
        if (failed) return;
        call.write({ summary: {} });
        call.end();
      });
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { server, calls, addr: `127.0.0.1:${port}` };
}

/** UNAVAILABLE with a ResumePoint at 1 s (32000 bytes of 16 kHz linear16) in its details. */
function drainingError() {
  const { ResumePoint, Status } = contract();
  const point = ResumePoint.encode(ResumePoint.fromObject({
    committedSeconds: 1, committedBytes: COMMITTED_BYTES, receivedSeconds: 1.25,
  })).finish();
  const status = Status.encode(Status.fromObject({
    code: grpc.status.UNAVAILABLE,
    message: 'draining',
    details: [{ typeUrl: `type.googleapis.com/${ResumePoint.fullName.slice(1)}`, value: point }],
  })).finish();
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(status));
  return { code: grpc.status.UNAVAILABLE, details: 'draining', metadata };
}

test('a resume sends the uncommitted Finalizes again at their place, and no KeepAlive', async () => {
  const { server, calls, addr } = await startFake();
  const client = new TranscribeClient(addr, { resume: { initialBackoffMs: 1, maxBackoffMs: 1 } });
  try {
    const stream = client.stream({ encoding: 'AUDIO_ENCODING_LINEAR16', sampleRate: 16000 });
    // The Finalize at 16000 is committed by then, the KeepAlive at 35200 was sent live, the
    // Finalize at 48000 comes after the resend point.
    const writing = (async () => {
      const audio = Buffer.alloc(64000);
      for (let pos = 0; pos < audio.length; pos += 3200) {
        if (pos === 16000 || pos === 48000) await stream.finalize();
        if (pos === 35200) await stream.keepAlive();
        await stream.send(audio.subarray(pos, pos + 3200));
      }
      await stream.end();
    })();
    const kinds = [];
    for await (const response of stream) kinds.push(response.response);
    await writing;
    assert.deepEqual(kinds, ['sessionStarted', 'result', 'summary']);
    assert.equal(calls.length, 2);
    assert.deepEqual(calls[0].controls.slice(0, 2), ['finalize@16000', 'keepAlive@35200']);
    assert.deepEqual(calls[1].controls, [`finalize@${48000 - COMMITTED_BYTES}`]);
    assert.equal(calls[1].bytes, 64000 - COMMITTED_BYTES);
  } finally {
    client.close();
    server.forceShutdown();
  }
});
