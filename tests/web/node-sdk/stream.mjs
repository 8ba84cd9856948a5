// Deepgram's official JS SDK (@deepgram/sdk v5), unchanged but for its environment URLs,
// streams a 16 kHz mono WAV through the gateway's /v1/listen and prints what it received.
//
// node stream.mjs <gateway http base, e.g. http://127.0.0.1:8080> <wav> [api key | access token]
// DG_CREDENTIAL=access_token makes the third argument an access token (Authorization: Bearer).
import { readFileSync } from "node:fs";
import { DeepgramClient } from "@deepgram/sdk";

const [base, wav, secret] = process.argv.slice(2);
const credential = secret
  ? process.env.DG_CREDENTIAL === "access_token" ? { accessToken: secret } : { apiKey: secret }
  : { apiKey: "unused" };
const ws = base.replace(/^http/, "ws");
const client = new DeepgramClient({
  ...credential,
  environment: { base, production: ws, agent: ws, agentRest: base },
});

function pcmOf(path) {
  const file = readFileSync(path);
  let offset = 12;
  while (offset + 8 <= file.length) {
    const id = file.toString("ascii", offset, offset + 4);
    const size = file.readUInt32LE(offset + 4);
    if (id === "data") return file.subarray(offset + 8, offset + 8 + size);
    offset += 8 + size + (size % 2);
  }
  throw new Error("no data chunk");
}

const messages = [];
let closeCode = null;
const connection = await client.listen.v1.connect({
  model: "nova-3",
  encoding: "linear16",
  sample_rate: 16000,
  interim_results: "true",
  punctuate: "true",
  reconnectAttempts: 0,
});
const closed = new Promise((resolve) => {
  connection.on("close", (event) => {
    closeCode = event?.code ?? null;
    resolve();
  });
});
connection.on("message", (message) => messages.push(message));
connection.on("error", (error) => console.error("error", String(error?.message ?? error)));
connection.connect();
await connection.waitForOpen();
const pcm = pcmOf(wav);
for (let i = 0; i < pcm.length; i += 3200) {
  connection.sendMedia(pcm.subarray(i, i + 3200));
  await new Promise((resolve) => setTimeout(resolve, 25));
}
connection.sendCloseStream({ type: "CloseStream" });
await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 60000))]);
const results = messages.filter((m) => m.type === "Results");
console.log(JSON.stringify({
  closeCode,
  types: [...new Set(messages.map((m) => m.type))],
  last: messages.length ? messages[messages.length - 1].type : null,
  finals: results.filter((m) => m.is_final).map((m) => m.channel.alternatives[0].transcript).join(" "),
  requestIds: [...new Set(results.map((m) => m.metadata.request_id))],
}));
process.exit(0);
