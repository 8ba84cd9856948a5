// Drives the library for tests/clients/test_node_client.py (outside test/, which `node --test` runs):
// `node e2e/probe.js SCENARIO ADDR CLIP` runs one scenario against the gateway at ADDR with the
// WAV file CLIP and prints one JSON object with what happened.

import { readFileSync } from 'node:fs';

import {
  TranscribeClient, TranscribeError, parseWav, splitChunks, transcribe,
} from '../lib/index.js';

function pcm(clip) {
  const data = readFileSync(clip);
  const wav = parseWav(data);
  return { pcm: data.subarray(wav.dataOffset, wav.dataOffset + wav.dataSize), rate: wav.sampleRate };
}

const linear16 = (rate) => ({ encoding: 'AUDIO_ENCODING_LINEAR16', sampleRate: rate });

function record(responses) {
  const finals = responses
    .filter((r) => r.response === 'result' && r.result.isFinal && r.result.alternatives.length)
    .map((r) => r.result.alternatives[0].transcript);
  return { kinds: responses.map((r) => r.response), transcript: finals.join(' ') };
}

const scenarios = {
  async transcribe(addr, clip) {
    const { pcm: audio, rate } = pcm(clip);
    const responses = [];
    for await (const r of transcribe(addr, splitChunks(audio, rate / 10), linear16(rate))) {
      responses.push(r);
    }
    return record(responses);
  },
  async error(addr, clip) {
    const { pcm: audio } = pcm(clip);
    try {
      for await (const _ of transcribe(addr, splitChunks(audio, 3200), linear16(500000))) { /* none */ }
    } catch (err) {
      if (err instanceof TranscribeError) return { status: err.statusName, details: err.details };
      throw err;
    }
    return { status: 'OK' };
  },
  async stream(addr, clip) {
    // The stream API by hand: send, finalize, end, read concurrently.
    const { pcm: audio, rate } = pcm(clip);
    const client = new TranscribeClient(addr);
    const stream = client.stream(linear16(rate));
    const responses = [];
    const reading = (async () => { for await (const r of stream) responses.push(r); })();
    for (const chunk of splitChunks(audio, rate / 10)) await stream.send(chunk);
    await stream.finalize();
    await stream.end();
    await reading;
    client.close();
    return { ...record(responses), fromFinalize: responses.some((r) => r.result?.fromFinalize) };
  },
  async odd_chunks(addr) {
    // Chunks of any size and cut inside frames (16-bit samples), around a Finalize: bytes
    // i % 251 for i in 0..100006, so the stand-in can check every byte and its order.
    const bytes = (from, to) => Buffer.from(Array.from({ length: to - from }, (_, i) => (from + i) % 251));
    const client = new TranscribeClient(addr);
    const stream = client.stream(linear16(16000));
    const reading = (async () => { for await (const _ of stream) { /* the stand-in's summary */ } })();
    await stream.send(bytes(0, 100001));
    await stream.send(bytes(100001, 100004));
    await stream.send(bytes(100004, 100005));
    await stream.finalize();
    await stream.send(bytes(100005, 100007));
    await stream.end();
    await reading;
    client.close();
    return { sent: 100007 };
  },
  async audio_failure(addr, clip) {
    const { pcm: audio, rate } = pcm(clip);
    async function* failing() {
      yield* splitChunks(audio.subarray(0, rate * 2 * 2), rate / 10);
      throw new Error('microphone unplugged');
    }
    const responses = [];
    try {
      for await (const r of transcribe(addr, failing(), linear16(rate))) responses.push(r);
    } catch (err) {
      return { ...record(responses), raised: err.message };
    }
    return { ...record(responses), raised: null };
  },
};

const [scenario, addr, clip] = process.argv.slice(2);
process.stdout.write(`${JSON.stringify(await scenarios[scenario](addr, clip))}\n`);
