import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import {
  CstpFrameDecoder,
  DEFAULT_MAX_RECEIVE_PAYLOAD_LENGTH,
  FRAME_HEADER_LENGTH,
  FrameType,
  MAX_SEND_PAYLOAD_LENGTH,
  encodeControlFrame,
  writeFrameHeader,
} from '../../../src/cstp/frame.js';

function captureError(action: () => unknown): AcvpnError {
  try {
    action();
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError, but nothing was thrown');
}

function drain(decoder: CstpFrameDecoder): Array<{ type: number; payload: string }> {
  const frames: Array<{ type: number; payload: string }> = [];
  for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
    frames.push({ type: frame.type, payload: frame.payload.toString('hex') });
  }
  return frames;
}

/** Builds a data frame the way the data path does: the header goes into headroom. */
function dataFrame(payload: Buffer): Buffer {
  const buffer = Buffer.alloc(FRAME_HEADER_LENGTH + payload.length);
  payload.copy(buffer, FRAME_HEADER_LENGTH);
  writeFrameHeader(buffer, 0, FrameType.DATA, payload.length);
  return buffer;
}

describe('CSTP frame encoding', () => {
  it('writes the header in headroom', () => {
    const buffer = Buffer.alloc(4 + FRAME_HEADER_LENGTH + 300, 0xee);
    Buffer.alloc(300, 0x45).copy(buffer, 4 + FRAME_HEADER_LENGTH);
    const length = writeFrameHeader(buffer, 4, FrameType.DATA, 300);
    expect(length).toBe(308);
    expect(buffer.subarray(0, 12).toString('hex')).toBe('eeeeeeee' + '5354460101' + '2c0000');
    expect(buffer.subarray(12, 12 + 300).every((byte) => byte === 0x45)).toBe(true);
  });

  it('encodes an empty control frame', () => {
    expect(encodeControlFrame(FrameType.KEEPALIVE).toString('hex')).toBe('5354460100000700');
    expect(encodeControlFrame(FrameType.DPD_REQ).toString('hex')).toBe('5354460100000300');
  });

  it('encodes a control frame with payload', () => {
    const frame = encodeControlFrame(FrameType.DPD_RESP, Buffer.from([1, 2, 3]));
    expect(frame.toString('hex')).toBe('5354460100030400010203');
  });

  it('uses the protocol type numbers', () => {
    expect(FrameType).toEqual({
      DATA: 0,
      DPD_REQ: 3,
      DPD_RESP: 4,
      DISCONNECT: 5,
      KEEPALIVE: 7,
      COMPRESSED: 8,
      TERMINATE: 9,
    });
  });

  it('rejects a payload larger than one TLS record', () => {
    const buffer = Buffer.alloc(FRAME_HEADER_LENGTH + MAX_SEND_PAYLOAD_LENGTH + 1);
    expect(writeFrameHeader(buffer, 0, FrameType.DATA, MAX_SEND_PAYLOAD_LENGTH)).toBe(16384);
    expect(captureError(() => writeFrameHeader(buffer, 0, FrameType.DATA, MAX_SEND_PAYLOAD_LENGTH + 1)).code).toBe('INTERNAL');
  });

  it('rejects a frame that overruns the buffer', () => {
    const buffer = Buffer.alloc(100);
    expect(captureError(() => writeFrameHeader(buffer, 10, FrameType.DATA, 83)).code).toBe('INTERNAL');
    expect(writeFrameHeader(buffer, 10, FrameType.DATA, 82)).toBe(90);
  });
});

describe('CstpFrameDecoder', () => {
  const payload = Buffer.from('450000140001000040', 'hex');
  const frame = dataFrame(payload);

  it('decodes one frame from one chunk without copying', () => {
    const decoder = new CstpFrameDecoder();
    decoder.push(frame);
    const decoded = decoder.next();
    expect(decoded?.type).toBe(FrameType.DATA);
    expect(decoded?.payload.toString('hex')).toBe(payload.toString('hex'));
    expect(decoded?.payload.buffer).toBe(frame.buffer);
    expect(decoded?.payload.byteOffset).toBe(frame.byteOffset + FRAME_HEADER_LENGTH);
    expect(decoder.next()).toBeUndefined();
    expect(decoder.bufferedLength).toBe(0);
  });

  it('decodes a frame split at every byte boundary', () => {
    for (let split = 1; split < frame.length; split += 1) {
      const decoder = new CstpFrameDecoder();
      decoder.push(frame.subarray(0, split));
      expect(decoder.next(), `split at ${split}`).toBeUndefined();
      decoder.push(frame.subarray(split));
      expect(drain(decoder), `split at ${split}`).toEqual([{ type: 0, payload: payload.toString('hex') }]);
    }
  });

  it('decodes a frame fed one byte at a time', () => {
    const decoder = new CstpFrameDecoder();
    const frames: Array<{ type: number; payload: string }> = [];
    for (let index = 0; index < frame.length; index += 1) {
      decoder.push(frame.subarray(index, index + 1));
      frames.push(...drain(decoder));
      if (index < frame.length - 1) expect(frames).toEqual([]);
    }
    expect(frames).toEqual([{ type: 0, payload: payload.toString('hex') }]);
  });

  it('decodes several frames from one chunk', () => {
    const stream = Buffer.concat([
      frame,
      encodeControlFrame(FrameType.DPD_REQ, Buffer.from('aa', 'hex')),
      encodeControlFrame(FrameType.KEEPALIVE),
      encodeControlFrame(FrameType.DISCONNECT, Buffer.from('b0', 'hex')),
    ]);
    const decoder = new CstpFrameDecoder();
    decoder.push(stream);
    expect(drain(decoder)).toEqual([
      { type: FrameType.DATA, payload: payload.toString('hex') },
      { type: FrameType.DPD_REQ, payload: 'aa' },
      { type: FrameType.KEEPALIVE, payload: '' },
      { type: FrameType.DISCONNECT, payload: 'b0' },
    ]);
    expect(decoder.bufferedLength).toBe(0);
  });

  it('decodes three frames at every pair of split points', () => {
    const frames = [frame, encodeControlFrame(FrameType.KEEPALIVE), dataFrame(Buffer.from('600000000000', 'hex'))];
    const stream = Buffer.concat(frames);
    const expected = [
      { type: 0, payload: payload.toString('hex') },
      { type: 7, payload: '' },
      { type: 0, payload: '600000000000' },
    ];
    for (let first = 0; first <= stream.length; first += 1) {
      for (let second = first; second <= stream.length; second += 1) {
        const decoder = new CstpFrameDecoder();
        const decoded: Array<{ type: number; payload: string }> = [];
        for (const chunk of [stream.subarray(0, first), stream.subarray(first, second), stream.subarray(second)]) {
          decoder.push(chunk);
          decoded.push(...drain(decoder));
        }
        expect(decoded, `splits ${first}, ${second}`).toEqual(expected);
      }
    }
  });

  it('copies a straddling frame and leaves chunks untouched', () => {
    // Buffer.alloc gives each chunk its own ArrayBuffer (Buffer.from may share the pool).
    const first = Buffer.alloc(10);
    const second = Buffer.alloc(frame.length - 10);
    frame.copy(first, 0, 0, 10);
    frame.copy(second, 0, 10);
    const decoder = new CstpFrameDecoder();
    decoder.push(first);
    decoder.push(second);
    const decoded = decoder.next();
    expect(decoded?.payload.toString('hex')).toBe(payload.toString('hex'));
    expect(decoded?.payload.buffer).not.toBe(first.buffer);
    expect(decoded?.payload.buffer).not.toBe(second.buffer);
    expect(Buffer.concat([first, second]).equals(frame)).toBe(true);
  });

  it('accepts the configured maximum payload', () => {
    const decoder = new CstpFrameDecoder({ maxPayloadLength: 2000 });
    decoder.push(dataFrame(Buffer.alloc(2000, 1)));
    expect(decoder.next()?.payload.length).toBe(2000);
  });

  it('rejects an oversize length before the payload arrives', () => {
    const decoder = new CstpFrameDecoder({ maxPayloadLength: 2000 });
    decoder.push(Buffer.from('53544601' + '07d1' + '0000', 'hex'));
    const error = captureError(() => decoder.next());
    expect(error.code).toBe('CSTP_FRAME_INVALID');
    expect(error.message).toContain('2001');
    expect(error.message).toContain('2000');
  });

  it('rejects a length above the default limit', () => {
    const decoder = new CstpFrameDecoder();
    expect(decoder.maxPayloadLength).toBe(DEFAULT_MAX_RECEIVE_PAYLOAD_LENGTH);
    decoder.push(Buffer.from('53544601' + 'ffff' + '0000', 'hex'));
    expect(captureError(() => decoder.next()).code).toBe('CSTP_FRAME_INVALID');
  });

  it.each([
    ['bad magic', '5354450100000000', '53 54 45 01 00 00 00 00'],
    ['bad version byte', '5354460200000000', '53 54 46 02 00 00 00 00'],
    ['non-zero byte 7', '5354460100000001', '53 54 46 01 00 00 00 01'],
    ['HTTP text', '485454502f312e31', '48 54 54 50 2f 31 2e 31'],
  ])('rejects %s', (_name, hex, shown) => {
    const decoder = new CstpFrameDecoder();
    decoder.push(Buffer.from(hex, 'hex'));
    const error = captureError(() => decoder.next());
    expect(error.code).toBe('CSTP_FRAME_INVALID');
    expect(error.message).toContain(shown);
  });

  it('rejects a bad header that straddles chunks', () => {
    const decoder = new CstpFrameDecoder();
    decoder.push(Buffer.from('535446', 'hex'));
    expect(decoder.next()).toBeUndefined();
    decoder.push(Buffer.from('0100000009', 'hex'));
    expect(captureError(() => decoder.next()).code).toBe('CSTP_FRAME_INVALID');
  });

  it('rejects a bad frame after a good one', () => {
    const decoder = new CstpFrameDecoder();
    decoder.push(Buffer.concat([frame, Buffer.from('0000000000000000', 'hex')]));
    expect(decoder.next()?.type).toBe(FrameType.DATA);
    expect(captureError(() => decoder.next()).code).toBe('CSTP_FRAME_INVALID');
  });

  it('keeps failing after an error', () => {
    const decoder = new CstpFrameDecoder();
    decoder.push(Buffer.from('0000000000000000', 'hex'));
    const first = captureError(() => decoder.next());
    decoder.push(frame);
    expect(captureError(() => decoder.next())).toBe(first);
    expect(decoder.bufferedLength).toBe(0);
  });

  it('rejects a limit outside the length field', () => {
    expect(captureError(() => new CstpFrameDecoder({ maxPayloadLength: 70000 })).code).toBe('INTERNAL');
  });
});
