// Protobuf's canonical proto3 JSON mapping for the plain objects @grpc/proto-loader decodes.
//
// proto-loader (keepCase, defaults, oneofs) fills every field with its default and adds a
// virtual key naming the set member of each oneof. The JSON mapping instead uses lowerCamelCase
// names, leaves out fields at their default (unless they track presence: oneof members and
// proto3 `optional` fields, which protobufjs leaves undefined when unset), writes enums by name
// and 64-bit integers as strings. This walks the schema to produce exactly that, in field number
// order, so it prints what Python's `json_format`, Go's `protojson` and .NET's `JsonFormatter` do.

import { loadContract } from './client.js';

/**
 * One message as a single line of proto3 JSON.
 * @param {object} message a decoded message
 * @param {string} [typeName] its full name
 */
export function toJSON(message, typeName = 'transcribe.v1.StreamTranscribeResponse') {
  const type = loadContract().schema.lookupType(typeName);
  return JSON.stringify(messageValue(type, message));
}

/** A message's JSON value (an object) given its protobufjs `Type`. */
export function messageValue(type, message) {
  const out = {};
  const fields = [...type.fieldsArray].sort((a, b) => a.id - b.id);
  for (const field of fields) {
    const value = message[field.name];
    if (value === undefined || value === null) continue;
    const key = jsonName(field.name);
    if (field.map) {
      const entries = Object.entries(value);
      if (entries.length > 0) {
        out[key] = Object.fromEntries(entries.map(([k, v]) => [k, fieldValue(field, v)]));
      }
    } else if (field.repeated) {
      if (value.length > 0) out[key] = value.map((v) => fieldValue(field, v));
    } else if (field.partOf !== null || !isDefault(field, value)) {
      out[key] = fieldValue(field, value);
    }
  }
  return out;
}

/** protoc's JSON name: underscores dropped, the letter after each one upper-cased. */
export function jsonName(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase()).replace(/_/g, '');
}

function fieldValue(field, value) {
  const resolved = field.resolvedType;
  if (resolved !== null && resolved.fieldsArray !== undefined) return messageValue(resolved, value);
  if (resolved !== null) {
    // An enum: proto-loader gives its name (enums: String); map a bare number to it.
    return typeof value === 'number' ? (resolved.valuesById[value] ?? value) : value;
  }
  switch (field.type) {
    case 'double':
    case 'float':
      if (Number.isNaN(value)) return 'NaN';
      if (value === Infinity) return 'Infinity';
      if (value === -Infinity) return '-Infinity';
      return value;
    case 'int64':
    case 'uint64':
    case 'sint64':
    case 'fixed64':
    case 'sfixed64':
      return String(value);
    case 'bytes':
      return Buffer.from(value).toString('base64');
    default:
      return value;
  }
}

function isDefault(field, value) {
  const resolved = field.resolvedType;
  if (resolved !== null && resolved.fieldsArray === undefined) {
    return value === 0 || value === resolved.valuesById[0];
  }
  switch (typeof value) {
    case 'string':
      return value === '' || (field.type.endsWith('64') && value === '0');
    case 'number':
      return value === 0 && !Object.is(value, -0);
    case 'boolean':
      return value === false;
    default:
      return Buffer.isBuffer(value) || value instanceof Uint8Array ? value.length === 0 : false;
  }
}
