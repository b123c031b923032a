// An incremental HTTP/1.1 response parser with hard limits, for the auth dialogue and the
// CONNECT reply. It takes bytes as they arrive and returns a whole response once one is complete.
//
// Limits are checked before anything is buffered, so a hostile or broken headend (a 5 MB line with
// no end, a chunk size of FFFFFFFFFFFFFFF0) costs at most the limit in memory and yields a typed
// error instead of a crash.

import { AcvpnError } from '../core/errors.js';

export interface HttpResponse {
  /** "HTTP/1.1" or "HTTP/1.0" */
  version: string;
  status: number;
  reason: string;
  /** Header lines in arrival order, names as sent. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** True when the headend will close the connection after this response. */
  closes: boolean;
}

export interface ParserLimits {
  maxLineBytes: number;
  maxHeaderCount: number;
  maxBodyBytes: number;
}

export const defaultLimits: ParserLimits = {
  maxLineBytes: 16 * 1024,
  maxHeaderCount: 200,
  // Auth forms and profiles are small; a megabyte is far above any real reply.
  maxBodyBytes: 1024 * 1024,
};

type BodyMode =
  | { kind: 'none' }
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked'; phase: 'size' | 'data' | 'data-end' | 'trailer'; remaining: number }
  | { kind: 'until-close' };

/** Returns the first value of a header, matching the name case-insensitively. */
export function headerValue(headers: Array<[string, string]>, name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find(([key]) => key.toLowerCase() === lower)?.[1];
}

export function headerValues(headers: Array<[string, string]>, name: string): string[] {
  const lower = name.toLowerCase();
  return headers.filter(([key]) => key.toLowerCase() === lower).map(([, value]) => value);
}

export class HttpResponseParser {
  private buffered: Buffer = Buffer.alloc(0);
  private phase: 'status' | 'headers' | 'body' | 'done' = 'status';
  private response: Omit<HttpResponse, 'body' | 'closes'> = { version: '', status: 0, reason: '', headers: [] };
  private bodyMode: BodyMode = { kind: 'none' };
  private bodyParts: Buffer[] = [];
  private bodyBytes = 0;

  /** With `headersOnly`, parsing stops after the header block (the CONNECT reply, followed by CSTP). */
  constructor(
    private readonly options: { headersOnly?: boolean; limits?: ParserLimits } = {},
  ) {}

  private get limits(): ParserLimits {
    return this.options.limits ?? defaultLimits;
  }

  /**
   * Feeds bytes. Returns the response when complete, plus the bytes that followed it
   * (for a CONNECT reply, the first CSTP frames).
   */
  push(chunk: Buffer): { response: HttpResponse; rest: Buffer } | undefined {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);

    while (this.phase === 'status' || this.phase === 'headers') {
      const line = this.takeLine();
      if (line === undefined) return undefined;
      if (this.phase === 'status') this.parseStatusLine(line);
      else if (line.length > 0) this.parseHeaderLine(line);
      else this.startBody();
    }

    if (this.phase === 'body') this.consumeBody();
    if (this.phase !== 'done') return undefined;

    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return { response: this.finish(), rest };
  }

  /** Called when the connection ended; completes a body delimited by the close. */
  end(): HttpResponse {
    if (this.phase === 'body' && this.bodyMode.kind === 'until-close') {
      this.phase = 'done';
      return this.finish();
    }
    const where = this.phase === 'status' ? 'before a status line' : `in the ${this.phase}`;
    throw new AcvpnError('HTTP_MALFORMED', `the headend closed the connection ${where} of its reply`);
  }

  private takeLine(): string | undefined {
    const newline = this.buffered.indexOf(0x0a);
    if (newline < 0) {
      if (this.buffered.length > this.limits.maxLineBytes) {
        throw new AcvpnError(
          'HTTP_MALFORMED',
          `the headend sent an HTTP line longer than ${this.limits.maxLineBytes} bytes; it is not a valid reply`,
        );
      }
      return undefined;
    }
    const end = newline > 0 && this.buffered[newline - 1] === 0x0d ? newline - 1 : newline;
    const line = this.buffered.subarray(0, end).toString('latin1');
    this.buffered = this.buffered.subarray(newline + 1);
    return line;
  }

  private parseStatusLine(line: string): void {
    const match = /^(HTTP\/1\.[01]) (\d{3})(?: (.*))?$/.exec(line);
    if (match === null) {
      throw new AcvpnError(
        'HTTP_MALFORMED',
        `the headend did not answer with an HTTP/1.x status line (received ${JSON.stringify(line.slice(0, 60))}); check the URL and port`,
      );
    }
    this.response.version = match[1] ?? '';
    this.response.status = Number(match[2]);
    this.response.reason = match[3] ?? '';
    this.phase = 'headers';
  }

  private parseHeaderLine(line: string): void {
    if (this.response.headers.length >= this.limits.maxHeaderCount) {
      throw new AcvpnError('HTTP_MALFORMED', `the headend sent more than ${this.limits.maxHeaderCount} header lines`);
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw new AcvpnError('HTTP_MALFORMED', `the headend sent a header line without a name (${JSON.stringify(line.slice(0, 40))})`);
    }
    // Header values are bytes on the wire; UTF-8 covers banners and domain names seen in practice.
    const name = line.slice(0, colon).trim();
    const value = Buffer.from(line.slice(colon + 1), 'latin1').toString('utf8').trim();
    this.response.headers.push([name, value]);
  }

  private startBody(): void {
    const headers = this.response.headers;
    const status = this.response.status;
    const transferEncoding = headerValue(headers, 'Transfer-Encoding')?.toLowerCase();
    const contentLength = headerValue(headers, 'Content-Length');

    if (this.options.headersOnly || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      this.bodyMode = { kind: 'none' };
    } else if (transferEncoding !== undefined && transferEncoding.includes('chunked')) {
      this.bodyMode = { kind: 'chunked', phase: 'size', remaining: 0 };
    } else if (contentLength !== undefined) {
      if (!/^\d{1,10}$/.test(contentLength.trim())) {
        throw new AcvpnError('HTTP_MALFORMED', `the headend sent an invalid Content-Length (${JSON.stringify(contentLength.slice(0, 20))})`);
      }
      const length = Number(contentLength.trim());
      this.checkBodySize(length);
      this.bodyMode = { kind: 'length', remaining: length };
    } else {
      this.bodyMode = { kind: 'until-close' };
    }
    this.phase = this.bodyMode.kind === 'none' ? 'done' : 'body';
  }

  private checkBodySize(extra: number): void {
    if (this.bodyBytes + extra > this.limits.maxBodyBytes) {
      throw new AcvpnError(
        'HTTP_MALFORMED',
        `the headend's reply body is larger than ${this.limits.maxBodyBytes} bytes; acvpn does not accept it`,
      );
    }
  }

  private appendBody(bytes: Buffer): void {
    this.checkBodySize(bytes.length);
    this.bodyParts.push(Buffer.from(bytes));
    this.bodyBytes += bytes.length;
  }

  private consumeBody(): void {
    const mode = this.bodyMode;
    if (mode.kind === 'length') {
      const take = Math.min(mode.remaining, this.buffered.length);
      this.appendBody(this.buffered.subarray(0, take));
      this.buffered = this.buffered.subarray(take);
      mode.remaining -= take;
      if (mode.remaining === 0) this.phase = 'done';
      return;
    }
    if (mode.kind === 'until-close') {
      this.appendBody(this.buffered);
      this.buffered = Buffer.alloc(0);
      return;
    }
    if (mode.kind === 'chunked') this.consumeChunks(mode);
  }

  private consumeChunks(mode: Extract<BodyMode, { kind: 'chunked' }>): void {
    for (;;) {
      if (mode.phase === 'size') {
        const line = this.takeLine();
        if (line === undefined) return;
        const sizeText = line.split(';')[0]?.trim() ?? '';
        // Eight hex digits already exceed the body limit; longer sizes are refused before parsing.
        if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) {
          throw new AcvpnError('HTTP_MALFORMED', `the headend sent an invalid chunk size (${JSON.stringify(sizeText.slice(0, 20))})`);
        }
        const size = parseInt(sizeText, 16);
        this.checkBodySize(size);
        if (size === 0) {
          mode.phase = 'trailer';
        } else {
          mode.phase = 'data';
          mode.remaining = size;
        }
      } else if (mode.phase === 'data') {
        const take = Math.min(mode.remaining, this.buffered.length);
        if (take === 0) return;
        this.appendBody(this.buffered.subarray(0, take));
        this.buffered = this.buffered.subarray(take);
        mode.remaining -= take;
        if (mode.remaining === 0) mode.phase = 'data-end';
      } else if (mode.phase === 'data-end') {
        const line = this.takeLine();
        if (line === undefined) return;
        if (line.length !== 0) throw new AcvpnError('HTTP_MALFORMED', 'the headend sent chunk data longer than its chunk size');
        mode.phase = 'size';
      } else {
        const line = this.takeLine();
        if (line === undefined) return;
        if (line.length === 0) {
          this.phase = 'done';
          return;
        }
      }
    }
  }

  private finish(): HttpResponse {
    const connection = headerValue(this.response.headers, 'Connection')?.toLowerCase();
    const closes =
      connection === 'close' ||
      (this.response.version === 'HTTP/1.0' && connection !== 'keep-alive') ||
      this.bodyMode.kind === 'until-close';
    return { ...this.response, body: Buffer.concat(this.bodyParts), closes };
  }
}
