import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/core/log.js';
import { AcvpnError } from '../../../src/core/errors.js';
import { encodeControlFrame, FrameType } from '../../../src/cstp/frame.js';
import { CstpChannel } from '../../../src/session/cstp-channel.js';

/** A socket stand-in that records each write and completes it only when the test says so. */
class FakeSocket extends EventEmitter {
  writes: Buffer[] = [];
  pending: Array<(error?: Error) => void> = [];
  destroyed = false;
  write(data: Buffer, callback: (error?: Error) => void): boolean {
    this.writes.push(Buffer.from(data));
    this.pending.push(callback);
    return true;
  }
  completeWrites(): void {
    while (this.pending.length > 0) this.pending.shift()?.();
  }
  resume(): void {}
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
}

/**
 * A socket that also has setMaxSendFragment and cuts every write into records as OpenSSL does:
 * chunks of at most the current fragment size.
 */
class FragmentingSocket extends FakeSocket {
  fragment = 16_384;
  readonly fragmentCalls: number[] = [];
  readonly records: Buffer[] = [];
  setMaxSendFragment(size: number): boolean {
    this.fragmentCalls.push(size);
    if (size < 512 || size > 16_384) return false;
    this.fragment = size;
    return true;
  }
  override write(data: Buffer, callback: (error?: Error) => void): boolean {
    for (let offset = 0; offset < data.length; offset += this.fragment) {
      this.records.push(Buffer.from(data.subarray(offset, Math.min(data.length, offset + this.fragment))));
    }
    return super.write(data, callback);
  }
}

/** Parses a record as one CSTP frame: the header's length must cover the record exactly. */
function frameOfRecord(record: Buffer): { type: number; payloadLength: number } {
  expect(record.subarray(0, 4).toString('latin1')).toBe('STF\x01');
  const payloadLength = record.readUInt16BE(4);
  expect(record.length, 'record length against frame length').toBe(8 + payloadLength);
  return { type: record[6]!, payloadLength };
}

const log = createLogger({ level: 'silent', json: true });

function openChannel(poolSize = 4) {
  const socket = new FakeSocket();
  const packets: Buffer[] = [];
  const closed: Array<AcvpnError | undefined> = [];
  const backpressure: boolean[] = [];
  const channel = new CstpChannel(
    socket as unknown as TLSSocket,
    { maxPacketBytes: 1500, poolSize },
    {
      onPacket: (packet) => packets.push(Buffer.from(packet)),
      onClosed: (error) => closed.push(error),
      onBackpressure: (full) => backpressure.push(full),
    },
    log,
  );
  channel.start(Buffer.alloc(0));
  return { socket, channel, packets, closed, backpressure };
}

describe('CstpChannel coalesced writes', () => {
  function openFragmenting(poolSize = 64) {
    const socket = new FragmentingSocket();
    const packets: Buffer[] = [];
    const channel = new CstpChannel(
      socket as unknown as TLSSocket,
      { maxPacketBytes: 1500, poolSize },
      { onPacket: (packet) => packets.push(Buffer.from(packet)), onClosed: () => {} },
      log,
    );
    channel.start(Buffer.alloc(0));
    return { socket, channel, packets };
  }

  it('writes a run of equal frames at once, one record each', () => {
    const { socket, channel } = openFragmenting();
    const packet = Buffer.alloc(1400, 0x45);
    for (let index = 0; index < 6; index += 1) channel.sendPacket(packet, 0, packet.length);
    expect(socket.writes).toHaveLength(1);
    socket.completeWrites();

    expect(socket.writes).toHaveLength(2);
    expect(socket.writes[1]).toHaveLength(5 * 1408);
    expect(socket.fragmentCalls).toEqual([1408]);
    expect(socket.records).toHaveLength(6);
    for (const record of socket.records) expect(frameOfRecord(record)).toEqual({ type: FrameType.DATA, payloadLength: 1400 });
    channel.close();
  });

  it('keeps order and record bounds across mixed lengths', () => {
    const { socket, channel } = openFragmenting();
    const lengths = [1400, 1400, 1400, 600, 600, 40, 1400, 1500, 1500, 1400];
    for (const length of lengths) channel.sendPacket(Buffer.alloc(length, length & 0xff), 0, length);
    socket.emit('data', encodeControlFrame(FrameType.DPD_REQ));
    for (let round = 0; round < 20 && socket.pending.length > 0; round += 1) socket.completeWrites();

    const frames = socket.records.map(frameOfRecord);
    const data = frames.filter((frame) => frame.type === FrameType.DATA).map((frame) => frame.payloadLength);
    expect(data).toEqual(lengths);
    expect(frames.filter((frame) => frame.type === FrameType.DPD_RESP)).toHaveLength(1);
    // A frame longer than the current fragment limit needs the limit raised first.
    expect(socket.fragmentCalls).toContain(16_384);
    channel.close();
  });

  it('writes frame by frame when the fragment limit is refused', () => {
    const { socket, channel } = openFragmenting();
    socket.setMaxSendFragment = () => false;
    const packet = Buffer.alloc(1400);
    for (let index = 0; index < 4; index += 1) channel.sendPacket(packet, 0, packet.length);
    for (let round = 0; round < 10 && socket.pending.length > 0; round += 1) socket.completeWrites();
    expect(socket.writes.map((write) => write.length)).toEqual([1408, 1408, 1408, 1408]);
    channel.close();
  });

  it('returns frame buffers to the pool when a run is copied', () => {
    const { socket, channel } = openFragmenting(4);
    const packet = Buffer.alloc(1000);
    for (let index = 0; index < 4; index += 1) expect(channel.sendPacket(packet, 0, packet.length)).toBe(true);
    expect(channel.sendPacket(packet, 0, packet.length)).toBe(false);
    socket.completeWrites();
    // The first frame came back with its write and the other three when the run was copied.
    for (let index = 0; index < 4; index += 1) expect(channel.sendPacket(packet, 0, packet.length)).toBe(true);
    channel.close();
  });
});

describe('CstpChannel', () => {
  it('writes one frame per write, in order', () => {
    const { socket, channel } = openChannel();
    const packet = Buffer.from('45000014aabbccdd', 'hex');
    channel.sendPacket(packet, 0, packet.length);
    channel.sendPacket(packet, 4, 4);
    expect(socket.writes).toHaveLength(1);
    expect(socket.writes[0]?.toString('hex')).toBe('53544601000800004500001' + '4aabbccdd');
    socket.completeWrites();
    expect(socket.writes).toHaveLength(2);
    expect(socket.writes[1]?.toString('hex')).toBe('5354460100040000aabbccdd');
    channel.close();
  });

  it('copies the packet before returning', () => {
    const { socket, channel } = openChannel();
    const packet = Buffer.from('01020304', 'hex');
    channel.sendPacket(packet, 0, 4);
    packet.fill(0xee);
    expect(socket.writes[0]?.subarray(8).toString('hex')).toBe('01020304');
    channel.close();
  });

  it('delivers data frames split across chunks', () => {
    const { socket, packets, channel } = openChannel();
    const frame = Buffer.concat([Buffer.from('5354460100030000', 'hex'), Buffer.from('abc')]);
    socket.emit('data', frame.subarray(0, 5));
    socket.emit('data', frame.subarray(5));
    expect(packets.map((packet) => packet.toString())).toEqual(['abc']);
    expect(channel.statistics.packetsReceived).toBe(1);
    channel.close();
  });

  it('echoes DPD requests', () => {
    const { socket, channel } = openChannel();
    socket.emit('data', encodeControlFrame(FrameType.DPD_REQ, Buffer.from('ping')));
    expect(socket.writes[0]?.toString('hex')).toBe(encodeControlFrame(FrameType.DPD_RESP, Buffer.from('ping')).toString('hex'));
    channel.close();
  });

  it('ends on a headend DISCONNECT', () => {
    const { socket, closed } = openChannel();
    socket.emit('data', encodeControlFrame(FrameType.DISCONNECT));
    expect(closed).toHaveLength(1);
    expect(closed[0]?.code).toBe('SESSION_TERMINATED');
    expect(socket.destroyed).toBe(true);
  });

  it('rejects a bad frame header', () => {
    const { socket, closed } = openChannel();
    socket.emit('data', Buffer.from('4854545020', 'hex').subarray(0, 5));
    socket.emit('data', Buffer.from('000000', 'hex'));
    expect(closed[0]?.code).toBe('CSTP_FRAME_INVALID');
  });

  it('sends a logout BYE and ends cleanly', async () => {
    const { socket, channel, closed } = openChannel();
    const done = channel.disconnect('user logout', 1000);
    expect(socket.writes[0]?.subarray(0, 9).toString('hex')).toBe('535446010' + '00c0500b0');
    expect(socket.writes[0]?.subarray(9).toString()).toBe('user logout');
    socket.completeWrites();
    await done;
    expect(closed).toEqual([undefined]);
  });

  it('reports a headend close as an error', () => {
    const { socket, closed } = openChannel();
    socket.destroy();
    expect(closed[0]?.code).toBe('NETWORK_UNREACHABLE');
  });

  it('signals back-pressure when the pool runs dry', () => {
    const { socket, channel, backpressure } = openChannel(2);
    const packet = Buffer.alloc(20, 1);
    expect(channel.sendPacket(packet, 0, 20)).toBe(true);
    expect(channel.sendPacket(packet, 0, 20)).toBe(true);
    expect(backpressure).toEqual([true]);
    expect(channel.sendPacket(packet, 0, 20)).toBe(false);
    expect(channel.statistics.packetsDropped).toBe(1);
    socket.completeWrites();
    expect(backpressure).toEqual([true, false]);
    channel.close();
  });

  it('drops packets over the maximum size', () => {
    const { channel } = openChannel();
    expect(channel.sendPacket(Buffer.alloc(1600), 0, 1600)).toBe(false);
    channel.close();
  });
});
