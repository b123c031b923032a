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
