// The package's entry point: the client, its errors, the resume decisions and the audio helpers.

export {
  DEFAULT_ADDR, DEFAULT_RESUME, TranscribeClient, TranscribeError, TranscribeStream,
  callMetadata, channelCredentials, statusName, transcribe,
} from './client.js';
export { PROTO_PATH, contract, responseFromJSON, statusDetails } from './contract.js';
export {
  KeptAudio, KeptControls, MAX_CHUNK_BYTES, MAX_KEPT_CONTROLS, backoffMs, frameBytes, keepFromByte, planResume,
  sendUntil, shouldResume,
} from './resume.js';
export {
  ENCODINGS, FALLBACK_BYTES_PER_SECOND, WavError, bytesPerSecond, encodingEnum, httpChunks, pace,
  parseWav, planFile, planUrl, readableChunks, splitChunks,
} from './audio.js';
