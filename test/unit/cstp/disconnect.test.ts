import { describe, expect, it } from 'vitest';
import {
  DisconnectReason,
  buildLogoutPayload,
  describeDisconnect,
  encodeLogoutFrame,
  encodeTemporaryDisconnectFrame,
  parseDisconnectPayload,
} from '../../../src/cstp/disconnect.js';
import { CstpFrameDecoder, FrameType } from '../../../src/cstp/frame.js';

describe('logout frame', () => {
  it('is type 5 with 0xB0 and the text', () => {
    const frame = encodeLogoutFrame('User logout');
    // "STF" 1, length 12, type 5, 0, then 0xB0 and "User logout".
    expect(frame.toString('hex')).toBe('53544601000c0500' + 'b0' + Buffer.from('User logout').toString('hex'));
  });

  it('decodes back through the frame decoder', () => {
    const decoder = new CstpFrameDecoder();
    decoder.push(encodeLogoutFrame());
    const frame = decoder.next();
    expect(frame?.type).toBe(FrameType.DISCONNECT);
    expect(frame?.payload[0]).toBe(DisconnectReason.UserLogout);
    expect(frame?.payload.subarray(1).toString('latin1')).toBe('Client logout');
  });

  it('replaces non-ASCII and control characters', () => {
    expect(buildLogoutPayload('Tschüss\r\nX').toString('latin1')).toBe('\xb0Tsch?ss??X');
  });

  it('caps the text length', () => {
    expect(buildLogoutPayload('x'.repeat(500))).toHaveLength(65);
  });

  it('temporary disconnect has an empty payload', () => {
    expect(encodeTemporaryDisconnectFrame().toString('hex')).toBe('5354460100000500');
  });
});

describe('parseDisconnectPayload', () => {
  it('empty payload has no reason', () => {
    const info = parseDisconnectPayload(Buffer.alloc(0));
    expect(info).toEqual({ text: '' });
    expect(describeDisconnect(info)).toBe('no reason given');
  });

  it('reads reason byte and text', () => {
    const info = parseDisconnectPayload(Buffer.concat([Buffer.from([0xb0]), Buffer.from('Idle timeout')]));
    expect(info).toEqual({ reasonCode: 0xb0, text: 'Idle timeout' });
    expect(describeDisconnect(info)).toBe('reason 0xb0: Idle timeout');
  });

  it('reason byte without text', () => {
    const info = parseDisconnectPayload(Buffer.from([0x09]));
    expect(info).toEqual({ reasonCode: 9, text: '' });
    expect(describeDisconnect(info)).toBe('reason 0x09');
  });

  it('replaces control characters so the log stays one line', () => {
    const info = parseDisconnectPayload(Buffer.concat([Buffer.from([0x70]), Buffer.from('bad\nINFO forged line\x1b[31m')]));
    expect(info.text).toBe('bad INFO forged line [31m');
  });

  it('caps the text length', () => {
    const info = parseDisconnectPayload(Buffer.concat([Buffer.from([0xb0]), Buffer.alloc(5000, 0x41)]));
    expect(info.text).toHaveLength(256);
  });

  it('reads a view with an offset', () => {
    const backing = Buffer.concat([Buffer.from('xxxx'), Buffer.from([0xd1]), Buffer.from('paused')]);
    expect(parseDisconnectPayload(backing.subarray(4))).toEqual({ reasonCode: 0xd1, text: 'paused' });
  });
});
