import { describe, expect, it } from 'vitest';
import { HttpResponseParser, headerValue, headerValues } from '../../../src/http/response-parser.js';
import { AcvpnError } from '../../../src/core/errors.js';

const completeReply = [
  'HTTP/1.1 200 OK',
  'Connection: Keep-Alive',
  'Content-Type: text/xml',
  'Content-Length: 25',
  'Set-Cookie: webvpncontext=abc; Secure; HttpOnly',
  'Set-Cookie: webvpn=<elided>; Secure; HttpOnly',
  '',
  '<?xml version="1.0"?><a/>',
].join('\r\n');

function parseAll(text: string | Buffer, options = {}) {
  const parser = new HttpResponseParser(options);
  return parser.push(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'));
}

describe('HttpResponseParser', () => {
  it('parses a content-length reply', () => {
    const result = parseAll(completeReply);
    expect(result?.response.status).toBe(200);
    expect(result?.response.reason).toBe('OK');
    expect(result?.response.body.toString()).toBe('<?xml version="1.0"?><a/>');
    expect(headerValues(result!.response.headers, 'set-cookie')).toHaveLength(2);
    expect(result?.response.closes).toBe(false);
  });

  it('completes at every split point', () => {
    const bytes = Buffer.from(completeReply, 'latin1');
    for (let split = 1; split < bytes.length; split += 1) {
      const parser = new HttpResponseParser();
      expect(parser.push(bytes.subarray(0, split))).toBeUndefined();
      const result = parser.push(bytes.subarray(split));
      expect(result?.response.body.length, `split at ${split}`).toBe(25);
    }
  });

  it('returns bytes after a CONNECT header block', () => {
    const text = 'HTTP/1.1 200 CONNECTED\r\nX-CSTP-MTU: 1372\r\n\r\nSTF\x01\x00\x00\x07\x00';
    const result = parseAll(text, { headersOnly: true });
    expect(result?.response.reason).toBe('CONNECTED');
    expect(headerValue(result!.response.headers, 'x-cstp-mtu')).toBe('1372');
    expect(result?.rest.toString('latin1')).toBe('STF\x01\x00\x00\x07\x00');
  });

  it('decodes a chunked body', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n';
    expect(parseAll(text)?.response.body.toString()).toBe('hello world');
  });

  it('rejects a huge chunk size', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFF0\r\n<?xml version="1.0"?><config-auth';
    expect(() => parseAll(text)).toThrowError(/invalid chunk size/);
  });

  it('rejects a negative chunk size', () => {
    const text = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc';
    try {
      parseAll(text);
      expect.unreachable();
    } catch (error) {
      expect(AcvpnError.is(error) && error.code).toBe('HTTP_MALFORMED');
    }
  });

  it('bounds a line without end', () => {
    const parser = new HttpResponseParser();
    parser.push(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'));
    const hexRun = Buffer.alloc(1024 * 1024, 'f');
    let thrown: unknown;
    for (let index = 0; index < 5 && thrown === undefined; index += 1) {
      try {
        parser.push(hexRun);
      } catch (error) {
        thrown = error;
      }
    }
    expect(AcvpnError.is(thrown) && thrown.code).toBe('HTTP_MALFORMED');
  });

  it('rejects a body over the limit', () => {
    const text = 'HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n';
    expect(() => parseAll(text)).toThrowError(/larger than/);
  });

  it('accepts an HTTP/1.0 body ended by close', () => {
    const parser = new HttpResponseParser();
    expect(parser.push(Buffer.from('HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<config-auth'))).toBeUndefined();
    parser.push(Buffer.from(' type="complete"/>'));
    const response = parser.end();
    expect(response.body.toString()).toBe('<config-auth type="complete"/>');
    expect(response.closes).toBe(true);
  });

  it('rejects a close before the headers end', () => {
    const parser = new HttpResponseParser();
    parser.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-'));
    expect(() => parser.end()).toThrowError(/closed the connection in the headers/);
  });

  it('rejects a non-HTTP status line', () => {
    expect(() => parseAll('SSH-2.0-OpenSSH_9.2\r\n')).toThrowError(/did not answer with an HTTP\/1.x status line/);
  });

  it('marks Connection close', () => {
    const result = parseAll('HTTP/1.1 401 Authentication failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(result?.response.status).toBe(401);
    expect(result?.response.closes).toBe(true);
  });
});
