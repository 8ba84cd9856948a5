// The contract, loaded once from the copy of transcribe.proto inside the package, and the
// conversions between the wire and the plain objects the library hands out.
//
// Messages are decoded with protobufjs and converted with its own `toObject` (camelCase
// fields, enums and 64-bit integers as strings, defaults filled, the name of each set oneof
// member): the objects types/ describes. Each response also keeps the decoded message behind
// a non-enumerable `toJSON`, so `JSON.stringify(response)` is protobufjs' proto3 JSON mapping
// of what came over the wire (defaults left out, as every language's protobuf library prints).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/** The copy of the contract in this package (made by the `prepare` script). */
export const PROTO_PATH = fileURLToPath(
  new URL('../proto/transcribe/v1/transcribe.proto', import.meta.url),
);
export const METHOD_PATH = '/transcribe.v1.TranscribeService/StreamTranscribe';
export const OBJECT_OPTIONS = { longs: String, enums: String, defaults: true, oneofs: true };

const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
const TYPE_URL_PREFIX = 'type.googleapis.com/';

// google.rpc.Status and ErrorInfo as the gateway sends them (from googleapis' status.proto and
// error_details.proto, only the fields read here).
const RPC_SCHEMA = `syntax = "proto3";
package google.rpc;
message Any { string type_url = 1; bytes value = 2; }
message Status { int32 code = 1; string message = 2; repeated Any details = 3; }
message ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; }`;

let loaded = null;

/** The message types and the service client constructor, loaded on first use. */
export function contract() {
  if (loaded !== null) return loaded;
  if (!existsSync(PROTO_PATH)) {
    throw new Error(`${PROTO_PATH} is missing: run \`npm ci\` (or \`npm run prepare\`) in the package`);
  }
  const root = new protobuf.Root().loadSync(PROTO_PATH);
  root.resolveAll();
  const rpc = protobuf.parse(RPC_SCHEMA).root;
  const Request = root.lookupType('transcribe.v1.StreamTranscribeRequest');
  const Response = root.lookupType('transcribe.v1.StreamTranscribeResponse');
  const ResumePoint = root.lookupType('transcribe.v1.ResumePoint');
  const Client = grpc.makeGenericClientConstructor({
    StreamTranscribe: {
      path: METHOD_PATH,
      requestStream: true,
      responseStream: true,
      requestSerialize: (request) => Buffer.from(Request.encode(Request.fromObject(request)).finish()),
      requestDeserialize: (bytes) => Request.decode(bytes),
      responseSerialize: (response) => Buffer.from(Response.encode(response).finish()),
      responseDeserialize: (bytes) => toPlain(Response, Response.decode(bytes)),
    },
  }, 'TranscribeService');
  loaded = {
    Client,
    Request,
    Response,
    ResumePoint,
    Status: rpc.lookupType('google.rpc.Status'),
    ErrorInfo: rpc.lookupType('google.rpc.ErrorInfo'),
  };
  return loaded;
}

/** A decoded message as a plain object, printing as proto3 JSON through `JSON.stringify`. */
export function toPlain(type, message) {
  const plain = type.toObject(message, OBJECT_OPTIONS);
  Object.defineProperty(plain, 'toJSON', { value: () => message.toJSON(), enumerable: false });
  return plain;
}

/**
 * A response from its proto3 JSON (as `JSON.stringify` prints it), through the wire format:
 * the same object the library yields for those bytes. For tests and recorded streams.
 */
export function responseFromJSON(json) {
  const { Response } = contract();
  const bytes = Response.encode(Response.fromObject(typeof json === 'string' ? JSON.parse(json) : json)).finish();
  return toPlain(Response, Response.decode(bytes));
}

/**
 * What a failed call's `grpc-status-details-bin` trailer says: `{reason, domain, resumePoint}`
 * (each null when absent). `raw` is the trailer's bytes, or a grpc-js Metadata.
 */
export function statusDetails(raw) {
  const bytes = raw instanceof grpc.Metadata ? raw.get(STATUS_DETAILS_KEY)[0] : raw;
  const found = { reason: null, domain: null, resumePoint: null };
  if (!(bytes instanceof Uint8Array)) return found;
  const { Status, ErrorInfo, ResumePoint } = contract();
  let status;
  try {
    status = Status.decode(bytes);
  } catch {
    return found; // not a google.rpc.Status: the status code and message still tell
  }
  for (const any of status.details) {
    if (any.typeUrl === TYPE_URL_PREFIX + ErrorInfo.fullName.slice(1)) {
      const info = ErrorInfo.decode(any.value);
      found.reason = info.reason;
      found.domain = info.domain;
    } else if (any.typeUrl === TYPE_URL_PREFIX + ResumePoint.fullName.slice(1)) {
      found.resumePoint = toPlain(ResumePoint, ResumePoint.decode(any.value));
    }
  }
  return found;
}
