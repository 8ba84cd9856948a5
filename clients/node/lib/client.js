// Open one `StreamTranscribe` call and iterate its responses.
//
// The contract is loaded at run time from proto/transcribe/v1/transcribe.proto with
// @grpc/proto-loader (keepCase, longs as String, enums as String, defaults, oneofs), so
// messages are plain objects with the proto's snake_case field names.

import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** The contract, two levels up from this package (clients/node -> the repository root). */
export const PROTO_PATH = fileURLToPath(
  new URL('../../../proto/transcribe/v1/transcribe.proto', import.meta.url),
);
export const DEFAULT_ADDR = '127.0.0.1:50051';
export const LOADER_OPTIONS = {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
};

const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const RESUME_POINT_URL = 'type.googleapis.com/transcribe.v1.ResumePoint';

let loaded = null;

/** Loads the contract once: the service client constructor and the message schema. */
export function loadContract(protoPath = PROTO_PATH) {
  if (loaded !== null && loaded.protoPath === protoPath) return loaded;
  const definition = protoLoader.loadSync(protoPath, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition);
  // The same file through protobufjs: field types and oneof membership for the JSON mapping.
  const schema = new protobuf.Root().loadSync(protoPath, { keepCase: true });
  schema.resolveAll();
  // google.rpc.Status, to read the rich error details of a failed call.
  const rpc = protobuf.parse(`syntax = "proto3"; package google.rpc;
    message Any { string type_url = 1; bytes value = 2; }
    message Status { int32 code = 1; string message = 2; repeated Any details = 3; }`).root;
  loaded = {
    protoPath,
    TranscribeService: pkg.transcribe.v1.TranscribeService,
    schema,
    statusType: rpc.lookupType('google.rpc.Status'),
  };
  return loaded;
}

/** A `StreamTranscribe` call ended with a non-OK gRPC status. */
export class TranscribeError extends Error {
  /**
   * @param {number} code the gRPC status code
   * @param {string} details the status message
   * @param {object|null} resumePoint the `ResumePoint` from the status details, if any
   */
  constructor(code, details, resumePoint = null) {
    super(`${statusName(code)}: ${details}`);
    this.name = 'TranscribeError';
    this.code = code;
    this.statusName = statusName(code);
    this.details = details;
    this.resumePoint = resumePoint;
  }
}

/** The canonical name of a gRPC status code, such as `INVALID_ARGUMENT`. */
export function statusName(code) {
  return grpc.status[code] ?? 'UNKNOWN';
}

/** Channel credentials: TLS with `caFile` (PEM) or the default roots, else plaintext. */
export function channelCredentials({ tls = false, caFile = null } = {}) {
  if (!tls && caFile === null) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(caFile !== null ? readFileSync(caFile) : null);
}

/** The call's metadata: `authorization: Bearer <token>` if a token is given, then `extra`. */
export function callMetadata(token = null, extra = []) {
  const metadata = new grpc.Metadata();
  if (token) metadata.add('authorization', `Bearer ${token}`);
  for (const [key, value] of extra) metadata.add(key, value);
  return metadata;
}

/**
 * Transcribes `audio` through the gateway at `addr` and yields every response.
 *
 * Sends `config` first, then one `audio` request per chunk (respecting flow control), then
 * half-closes. If `audio` throws, the stream is half-closed there too and its error is thrown
 * once the gateway has sent the results for the audio it got. A non-OK status throws
 * `TranscribeError`. Leaving the loop early (break, return) or aborting `signal` cancels the
 * call (aborting throws `TranscribeError` CANCELLED).
 *
 * @param {string} addr gateway `HOST:PORT`
 * @param {Iterable<Buffer>|AsyncIterable<Buffer>} audio
 * @param {object} config a `StreamingConfig` (snake_case fields, enum names as strings)
 * @param {{token?: string|null, tls?: boolean, caFile?: string|null,
 *          metadata?: Array<[string, string]>, deadline?: Date|number|null,
 *          signal?: AbortSignal}} [options]
 * @returns {AsyncGenerator<object>} `StreamTranscribeResponse` objects
 */
export async function* transcribe(addr, audio, config = {}, options = {}) {
  const {
    token = null, tls = false, caFile = null, metadata = [], deadline = null, signal = null,
  } = options;
  const { TranscribeService, statusType } = loadContract();
  const client = new TranscribeService(addr, channelCredentials({ tls, caFile }));
  const call = client.StreamTranscribe(
    callMetadata(token, metadata),
    deadline !== null ? { deadline } : {},
  );
  // Errors are read through the async iterator; this keeps an unread 'error' from throwing.
  call.on('error', () => {});
  // Aborted once the call is over, so that a write waiting for 'drain' gives up.
  const over = new AbortController();
  call.once('status', () => over.abort());
  call.once('close', () => over.abort());
  const cancel = () => call.cancel();
  if (signal?.aborted) cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  let audioError = null;
  const send = async (request) => {
    if (!call.write(request)) await once(call, 'drain', { signal: over.signal });
  };
  const writing = (async () => {
    try {
      await send({ config });
      for await (const chunk of audio) {
        if (over.signal.aborted || call.writableEnded) return;
        if (chunk.length > 0) await send({ audio: chunk });
      }
    } catch (err) {
      if (!over.signal.aborted) audioError = err; // else: the call ended, its status says why
    } finally {
      if (!call.writableEnded && !over.signal.aborted) call.end();
    }
  })();
  let finished = false;
  try {
    for await (const response of call) yield response;
    finished = true;
  } catch (err) {
    if (typeof err?.code === 'number' && 'details' in err) {
      throw new TranscribeError(err.code, err.details, resumePoint(err.metadata, statusType));
    }
    throw err;
  } finally {
    signal?.removeEventListener('abort', cancel);
    if (!finished) call.cancel();
    over.abort();
    client.close();
  }
  // The gateway ends a call with OK only after the half-close, so the writer is done by now.
  await writing;
  if (audioError !== null) throw audioError;
}

/** The `ResumePoint` in a failed call's status details, or null. */
function resumePoint(metadata, statusType) {
  const [raw] = metadata?.get(STATUS_DETAILS_KEY) ?? [];
  if (!Buffer.isBuffer(raw)) return null;
  const status = statusType.decode(raw);
  const detail = status.details.find((any) => any.type_url === RESUME_POINT_URL);
  if (detail === undefined) return null;
  const type = loadContract().schema.lookupType('transcribe.v1.ResumePoint');
  return type.toObject(type.decode(detail.value), { longs: String, defaults: true });
}
