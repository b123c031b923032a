// JSON-RPC 2.0 over newline-delimited JSON, the wire format of the control socket. Pure: it turns
// bytes into requests and results into lines, and does no I/O.
//
//   client ─► {"jsonrpc":"2.0","id":1,"method":"status"}\n
//   daemon ─► {"jsonrpc":"2.0","id":1,"result":{"state":"idle"}}\n
//   daemon ─► {"jsonrpc":"2.0","method":"event","params":{"event":"state",...}}\n   (after subscribe)
//
// One request per line, UTF-8, at most MAX_LINE_BYTES bytes before the newline. Batches (a JSON
// array) are not supported. Requests without an id are notifications: they run, but get no
// response, not even an error, as JSON-RPC 2.0 requires.

import { AcvpnError, exitCodeFor } from '../core/errors.js';
import { redactValue } from '../core/redact.js';

export const JSONRPC_VERSION = '2.0';

/** A longer line is answered with an error, and the connection is closed. */
export const MAX_LINE_BYTES = 64 * 1024;

/** The error codes JSON-RPC 2.0 reserves, and the range used for acvpn's own errors. */
export const RpcErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /**
   * An AcvpnError: the code is APPLICATION_BASE minus the exit code of its class, so
   * -32002 bad arguments, -32003 authentication rejected, -32004 group not found, -32005 server
   * not trusted, -32006 network, -32007 environment, -32008 ended by the headend, -32001 internal.
   */
  applicationBase: -32000,
} as const;

export type RequestId = string | number | null;

export interface RpcRequest {
  /** Undefined for a notification (no response is sent). */
  id: RequestId | undefined;
  method: string;
  /** By-name parameters; an empty object when the request had none. */
  params: Record<string, unknown>;
}

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: Record<string, unknown>;
}

export type RpcResponse =
  | { jsonrpc: '2.0'; id: RequestId; result: unknown }
  | { jsonrpc: '2.0'; id: RequestId; error: RpcErrorObject };

export interface RpcNotification {
  jsonrpc: '2.0';
  method: string;
  params: Record<string, unknown>;
}

/** A failure to report to the client as a JSON-RPC error object. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export function invalidParams(message: string, data?: Record<string, unknown>): RpcError {
  return new RpcError(RpcErrorCode.invalidParams, message, data);
}

export type ParsedLine = { kind: 'request'; request: RpcRequest } | { kind: 'error'; response: RpcResponse };

/** Parses one line (without its newline) into a request, or into the error response to send. */
export function parseRequestLine(line: string): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return failure(null, new RpcError(RpcErrorCode.parseError, `the request is not valid JSON (${line.length} characters received); send one JSON-RPC 2.0 object per line`));
  }

  if (Array.isArray(value)) {
    return failure(null, new RpcError(RpcErrorCode.invalidRequest, 'batch requests are not supported; send one JSON-RPC 2.0 object per line'));
  }
  if (typeof value !== 'object' || value === null) {
    return failure(null, new RpcError(RpcErrorCode.invalidRequest, `the request must be a JSON object, received ${describeType(value)}`));
  }

  const object = value as Record<string, unknown>;
  const id = readId(object);
  if (id === 'invalid') {
    return failure(null, new RpcError(RpcErrorCode.invalidRequest, `the request id must be a string, a number or null, received ${describeType(object.id)}`));
  }
  if (object.jsonrpc !== JSONRPC_VERSION) {
    return failure(id ?? null, new RpcError(RpcErrorCode.invalidRequest, `the request must contain "jsonrpc": "2.0", received ${describeType(object.jsonrpc)}`));
  }
  if (typeof object.method !== 'string' || object.method === '') {
    return failure(id ?? null, new RpcError(RpcErrorCode.invalidRequest, `the request must contain a method name string, received ${describeType(object.method)}`));
  }

  const params = object.params;
  if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
    // JSON-RPC also allows positional (array) parameters; every acvpn method takes named ones.
    return failure(id ?? null, invalidParams(`the params of ${object.method} must be a JSON object with named parameters, received ${describeType(params)}`));
  }
  return { kind: 'request', request: { id, method: object.method, params: (params as Record<string, unknown> | undefined) ?? {} } };
}

function readId(object: Record<string, unknown>): RequestId | undefined | 'invalid' {
  if (!('id' in object)) return undefined;
  const id = object.id;
  if (id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) return id;
  return 'invalid';
}

function failure(id: RequestId, error: RpcError): ParsedLine {
  return { kind: 'error', response: errorResponse(id, error) };
}

/** Names the JSON type of a value for an error message, without echoing the value itself. */
export function describeType(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

// ── responses ─────────────────────────────────────────────────────────────────────────────────

export function resultResponse(id: RequestId, result: unknown): RpcResponse {
  return { jsonrpc: JSONRPC_VERSION, id, result };
}

/**
 * Builds the error response for anything thrown while a request ran. An RpcError keeps its code;
 * an AcvpnError gets its class code and its stable code in data.code; anything else is a bug and
 * is reported as -32603 without its message, which may contain internals.
 */
export function errorResponse(id: RequestId, error: unknown): RpcResponse {
  return { jsonrpc: JSONRPC_VERSION, id, error: toErrorObject(error) };
}

export function toErrorObject(error: unknown): RpcErrorObject {
  if (error instanceof RpcError) {
    return error.data === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.data };
  }
  if (AcvpnError.is(error)) {
    const exitCode = exitCodeFor(error.code);
    return {
      code: RpcErrorCode.applicationBase - exitCode,
      message: error.message,
      data: { ...error.details, code: error.code, exitCode },
    };
  }
  return { code: RpcErrorCode.internalError, message: 'internal error in the acvpn daemon; see its log' };
}

export function notification(method: string, params: Record<string, unknown>): RpcNotification {
  return { jsonrpc: JSONRPC_VERSION, method, params };
}

/**
 * Serializes one message as a line. Every message passes through the redaction of core/redact,
 * so a registered secret or a secret-named field never leaves the daemon, whatever a method
 * returned.
 */
export function encodeMessage(message: RpcResponse | RpcNotification | Record<string, unknown>): string {
  return `${JSON.stringify(redactValue(message))}\n`;
}

// ── framing ───────────────────────────────────────────────────────────────────────────────────

export type FrameResult = { lines: string[]; overflow: boolean };

/**
 * Splits a byte stream into lines. Bytes are kept until a newline arrives, but never more than
 * maxLineBytes: a longer line sets `overflow`, after which the stream is unusable (the caller
 * answers with an error and closes the connection).
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflowed = false;

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  push(chunk: Buffer): FrameResult {
    const lines: string[] = [];
    if (this.overflowed) return { lines, overflow: true };
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      const piece = chunk.subarray(start, newline);
      if (this.pendingBytes + piece.length > this.maxLineBytes) return this.overflow(lines);
      const line = this.pendingBytes === 0 ? piece : Buffer.concat([...this.pending, piece]);
      this.pending = [];
      this.pendingBytes = 0;
      const text = line.toString('utf8').replace(/\r$/, '');
      if (text.trim() !== '') lines.push(text);
      start = newline + 1;
    }
    const rest = chunk.subarray(start);
    if (this.pendingBytes + rest.length > this.maxLineBytes) return this.overflow(lines);
    if (rest.length > 0) {
      // Copy, because the socket may reuse the chunk's memory.
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return { lines, overflow: false };
  }

  private overflow(lines: string[]): FrameResult {
    this.overflowed = true;
    this.pending = [];
    this.pendingBytes = 0;
    return { lines, overflow: true };
  }
}

export function lineTooLongError(maxLineBytes = MAX_LINE_BYTES): RpcError {
  return new RpcError(RpcErrorCode.invalidRequest, `request line longer than ${maxLineBytes} bytes; the connection is closed`);
}
