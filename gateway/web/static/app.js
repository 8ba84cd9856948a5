// The page: audio from the microphone (or a file) -> AudioWorklet -> linear16 frames over the
// gateway's /v1/listen websocket; Results back -> finals in black, the interim in grey.
// gateway_events=true asks the gateway for its GatewayEvent messages (reconnects, drain),
// which Deepgram's SDKs never receive.

const $ = (id) => document.getElementById(id);
const MAX_PENDING_CHUNKS = 100; // of 100 ms each

let run = null; // the running stream: { socket, context, stopAudio }

function setStatus(text) {
  $("status").textContent = text;
}

function logEvent(text, kind = "") {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  if (kind) item.className = kind;
  $("events").append(item);
}

function listenUrl(sampleRate) {
  const params = new URLSearchParams({
    model: $("model").value.trim() || "nova-3",
    language: $("language").value.trim() || "en",
    encoding: "linear16",
    sample_rate: String(sampleRate),
    channels: "1",
    interim_results: String($("interim_results").checked),
    punctuate: String($("punctuate").checked),
    smart_format: String($("smart_format").checked),
    vad_events: String($("vad_events").checked),
    gateway_events: "true",
  });
  const endpointing = $("endpointing").value.trim();
  if (endpointing) params.set("endpointing", endpointing);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/listen?${params}`;
}

function credentials() {
  // Browsers cannot set Authorization on a websocket: the token goes as a subprotocol pair,
  // as Deepgram's browser SDK sends it. Access tokens from /v1/auth/grant are bearer tokens.
  const token = $("token").value.trim();
  if (!token) return undefined;
  return [token.startsWith("gw1.") ? "bearer" : "token", token];
}

function showResult(message) {
  const alternative = message.channel.alternatives[0];
  const text = alternative ? alternative.transcript : "";
  if (message.is_final) {
    if (text) {
      const span = document.createElement("span");
      span.className = "final";
      span.textContent = ($("finals").textContent ? " " : "") + text;
      $("finals").append(span);
    }
    $("interim").textContent = "";
  } else {
    $("interim").textContent = text ? ` ${text}` : "";
  }
}

function showGatewayEvent(message) {
  switch (message.event) {
    case "session_started":
      logEvent(`session ${message.session_id} started`);
      break;
    case "reconnecting":
      logEvent(`upstream lost (${message.reason}): reconnecting, attempt ${message.attempt}; ` +
        `transcript safe up to ${message.committed_seconds.toFixed(2)} s`, "reconnect");
      break;
    case "reconnected":
      logEvent(`reconnected after ${message.attempts} attempt(s), ` +
        `replayed ${message.replayed_audio_seconds.toFixed(2)} s of audio`, "reconnect");
      break;
    case "going_away":
      logEvent(`the gateway is shutting down (${message.grace_seconds} s grace)`, "reconnect");
      break;
    default:
      logEvent(`gateway event ${message.event}`);
  }
}

async function audioSource(context) {
  if (document.querySelector("input[name=source]:checked").value === "file") {
    const file = $("file").files[0];
    if (!file) throw new Error("choose an audio file first");
    const buffer = await context.decodeAudioData(await file.arrayBuffer());
    const node = new AudioBufferSourceNode(context, { buffer });
    let started = false;
    const start = () => { started = true; node.start(); };
    const stop = () => { if (started) node.stop(); started = false; };
    return { node, start, stop, ended: node };
  }
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const node = new MediaStreamAudioSourceNode(context, { mediaStream: media });
  return { node, start: () => {}, stop: () => media.getTracks().forEach((t) => t.stop()), ended: null };
}

function newAudioContext() {
  // 16 kHz is plenty for speech and a third of the bytes of 48 kHz; the browser resamples the
  // microphone to it. Where a browser refuses the rate, its own rate is sent instead.
  try {
    return new AudioContext({ sampleRate: 16000 });
  } catch {
    return new AudioContext();
  }
}

async function start() {
  $("start").disabled = true;
  $("finals").textContent = "";
  $("interim").textContent = "";
  $("events").textContent = "";
  const context = newAudioContext();
  try {
    await context.audioWorklet.addModule("/static/worklet.js");
    const source = await audioSource(context);
    const capture = new AudioWorkletNode(context, "pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
    const mute = new GainNode(context, { gain: 0 });
    source.node.connect(capture).connect(mute).connect(context.destination);

    setStatus("connecting");
    const socket = new WebSocket(listenUrl(context.sampleRate), credentials());
    socket.binaryType = "arraybuffer";
    run = { socket, context, source, closing: false };
    // Audio captured while the socket opens is kept and sent first, so no word is lost; a
    // socket that takes longer than MAX_PENDING_CHUNKS (10 s) to open drops the oldest.
    const pending = [];
    let sentBytes = 0;
    const send = (chunk) => {
      socket.send(chunk);
      sentBytes += chunk.byteLength;
    };
    capture.port.onmessage = (event) => {
      if (run.closing) return;
      if (socket.readyState === WebSocket.CONNECTING) {
        pending.push(event.data);
        if (pending.length > MAX_PENDING_CHUNKS) pending.shift();
        return;
      }
      if (socket.readyState !== WebSocket.OPEN) return;
      send(event.data);
      setStatus(`streaming at ${context.sampleRate} Hz: ${(sentBytes / 2 / context.sampleRate).toFixed(1)} s sent`);
    };
    if (source.ended) source.ended.onended = () => stop();
    socket.onopen = () => {
      pending.splice(0).forEach(send);
      setStatus(`streaming at ${context.sampleRate} Hz`);
      logEvent("connected");
      $("stop").disabled = false;
      source.start();
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "Results") showResult(message);
      else if (message.type === "GatewayEvent") showGatewayEvent(message);
      else if (message.type === "SpeechStarted") logEvent(`speech at ${message.timestamp.toFixed(2)} s`);
      else if (message.type === "UtteranceEnd") logEvent(`utterance end at ${message.last_word_end.toFixed(2)} s`);
      else if (message.type === "Metadata") logEvent(`done: ${message.duration.toFixed(2)} s of audio`);
    };
    socket.onclose = (event) => {
      const clean = event.code === 1000;
      logEvent(`closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`, clean ? "" : "error");
      setStatus(clean ? "closed" : `closed with ${event.code}`);
      finish();
    };
    socket.onerror = () => logEvent("the websocket failed (refused, or the gateway is unreachable)", "error");
  } catch (error) {
    logEvent(String(error.message || error), "error");
    setStatus("idle");
    await context.close();
    $("start").disabled = false;
  }
}

function stop() {
  if (!run || run.closing) return;
  run.closing = true;
  $("stop").disabled = true;
  setStatus("finishing");
  run.source.stop();
  // CloseStream, then wait for the gateway to close: it sends the last finals first.
  if (run.socket.readyState === WebSocket.OPEN) run.socket.send(JSON.stringify({ type: "CloseStream" }));
}

function finish() {
  if (!run) return;
  run.source.stop();
  run.context.close();
  run = null;
  $("interim").textContent = "";
  $("start").disabled = false;
  $("stop").disabled = true;
}

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
