import { afterEach, describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { clearSecretsForTest, registerSecret } from '../../../src/core/redact.js';
import {
  LineSplitter,
  RpcError,
  RpcErrorCode,
  encodeMessage,
  errorResponse,
  parseRequestLine,
  resultResponse,
} from '../../../src/control/jsonrpc.js';

function errorCodeOf(line: string): number | undefined {
  const parsed = parseRequestLine(line);
  if (parsed.kind !== 'error') return undefined;
  return 'error' in parsed.response ? parsed.response.error.code : undefined;
}

describe('parseRequestLine', () => {
  it.each([
    ['garbage', 'hello there', RpcErrorCode.parseError],
    ['truncated JSON', '{"jsonrpc":"2.0","id":1,', RpcErrorCode.parseError],
    ['batch array', '[{"jsonrpc":"2.0","id":1,"method":"status"}]', RpcErrorCode.invalidRequest],
    ['empty batch', '[]', RpcErrorCode.invalidRequest],
    ['number', '42', RpcErrorCode.invalidRequest],
    ['null', 'null', RpcErrorCode.invalidRequest],
    ['missing version', '{"id":1,"method":"status"}', RpcErrorCode.invalidRequest],
    ['wrong version', '{"jsonrpc":"1.0","id":1,"method":"status"}', RpcErrorCode.invalidRequest],
    ['missing method', '{"jsonrpc":"2.0","id":1}', RpcErrorCode.invalidRequest],
    ['method not a string', '{"jsonrpc":"2.0","id":1,"method":7}', RpcErrorCode.invalidRequest],
    ['object id', '{"jsonrpc":"2.0","id":{},"method":"status"}', RpcErrorCode.invalidRequest],
    ['positional params', '{"jsonrpc":"2.0","id":1,"method":"status","params":[1]}', RpcErrorCode.invalidParams],
    ['string params', '{"jsonrpc":"2.0","id":1,"method":"status","params":"x"}', RpcErrorCode.invalidParams],
  ])('rejects %s', (_name, line, code) => {
    expect(errorCodeOf(line)).toBe(code);
  });

  it('keeps the id of a request with a bad version', () => {
    const parsed = parseRequestLine('{"jsonrpc":"1.0","id":"abc","method":"status"}');
    expect(parsed.kind).toBe('error');
    if (parsed.kind === 'error') expect(parsed.response.id).toBe('abc');
  });

  it('parses a request with named params', () => {
    const parsed = parseRequestLine('{"jsonrpc":"2.0","id":7,"method":"answer","params":{"id":"q","value":"v"}}');
    expect(parsed).toEqual({ kind: 'request', request: { id: 7, method: 'answer', params: { id: 'q', value: 'v' } } });
  });

  it('parses a notification without id', () => {
    const parsed = parseRequestLine('{"jsonrpc":"2.0","method":"status"}');
    expect(parsed.kind).toBe('request');
    if (parsed.kind === 'request') {
      expect(parsed.request.id).toBeUndefined();
      expect(parsed.request.params).toEqual({});
    }
  });

  it('does not echo the received text', () => {
    const parsed = parseRequestLine('{"password":"hunter22-secret"');
    expect(JSON.stringify(parsed)).not.toContain('hunter22-secret');
  });
});

describe('errorResponse', () => {
  it('maps an AcvpnError to its class code and data.code', () => {
    const response = errorResponse(3, new AcvpnError('AUTH_REJECTED', 'the headend rejected the credentials', { formId: 'main' }));
    expect(response).toEqual({
      jsonrpc: '2.0',
      id: 3,
      error: { code: -32003, message: 'the headend rejected the credentials', data: { formId: 'main', code: 'AUTH_REJECTED', exitCode: 3 } },
    });
  });

  it.each([
    ['USAGE', -32002],
    ['AUTH_GROUP_NOT_FOUND', -32004],
    ['SERVER_UNTRUSTED', -32005],
    ['TLS_FAILED', -32006],
    ['ENV_NOT_ROOT', -32007],
    ['COOKIE_REJECTED', -32008],
    ['INTERNAL', -32001],
  ] as const)('gives %s the code %d', (code, rpcCode) => {
    const response = errorResponse(1, new AcvpnError(code, 'x'));
    expect(response).toHaveProperty('error.code', rpcCode);
  });

  it('keeps an RpcError', () => {
    const response = errorResponse('a', new RpcError(RpcErrorCode.methodNotFound, 'unknown method'));
    expect(response).toEqual({ jsonrpc: '2.0', id: 'a', error: { code: -32601, message: 'unknown method' } });
  });

  it('hides the message of an unexpected exception', () => {
    const response = errorResponse(1, new TypeError('cannot read x of undefined at /secret/path'));
    expect(response).toHaveProperty('error.code', RpcErrorCode.internalError);
    expect(JSON.stringify(response)).not.toContain('/secret/path');
  });
});

describe('encodeMessage', () => {
  afterEach(() => clearSecretsForTest());

  it('redacts registered secrets and secret-named fields', () => {
    registerSecret('correct-horse-battery');
    const line = encodeMessage(resultResponse(1, { note: 'the password is correct-horse-battery', password: 'abc' }));
    expect(line.endsWith('\n')).toBe(true);
    expect(line).not.toContain('correct-horse-battery');
    expect(JSON.parse(line).result.password).toBe('[redacted]');
  });
});

describe('LineSplitter', () => {
  it('joins a line split across chunks', () => {
    const splitter = new LineSplitter(100);
    expect(splitter.push(Buffer.from('{"a":')).lines).toEqual([]);
    expect(splitter.push(Buffer.from('1}\n{"b":2}\n{"c"')).lines).toEqual(['{"a":1}', '{"b":2}']);
    expect(splitter.push(Buffer.from(':3}\r\n')).lines).toEqual(['{"c":3}']);
  });

  it('skips empty lines', () => {
    expect(new LineSplitter(100).push(Buffer.from('\n\n{}\n')).lines).toEqual(['{}']);
  });

  it('accepts a line of exactly the limit', () => {
    const result = new LineSplitter(10).push(Buffer.from(`${'x'.repeat(10)}\n`));
    expect(result).toEqual({ lines: ['x'.repeat(10)], overflow: false });
  });

  it('overflows on a complete line over the limit', () => {
    expect(new LineSplitter(10).push(Buffer.from(`${'x'.repeat(11)}\n`)).overflow).toBe(true);
  });

  it('overflows on an unfinished line over the limit', () => {
    const splitter = new LineSplitter(10);
    expect(splitter.push(Buffer.from('x'.repeat(6))).overflow).toBe(false);
    expect(splitter.push(Buffer.from('x'.repeat(6))).overflow).toBe(true);
    expect(splitter.push(Buffer.from('{}\n'))).toEqual({ lines: [], overflow: true });
  });

  it('returns the lines before an overflow', () => {
    const result = new LineSplitter(10).push(Buffer.from(`{}\n${'x'.repeat(20)}`));
    expect(result).toEqual({ lines: ['{}'], overflow: true });
  });
});
