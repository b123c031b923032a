// FakeTun keeps the contracts of the real device, so other modules' unit tests can trust it.

import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import { FakeTun } from '../../fakes/fake-tun.js';

function packet(size: number, fill: number): Buffer {
  return Buffer.alloc(size, fill);
}

function unpack(buffer: Buffer, lengths: Uint32Array, count: number): Buffer[] {
  const packets: Buffer[] = [];
  let offset = 0;
  for (let index = 0; index < count; index++) {
    const length = lengths[index] ?? 0;
    packets.push(Buffer.from(buffer.subarray(offset, offset + length)));
    offset += length;
  }
  return packets;
}

describe('FakeTun', () => {
  it('delivers packets back to back in one batch', async () => {
    const tun = new FakeTun();
    const received: Buffer[] = [];
    tun.onPackets((buffer, lengths, count) => received.push(...unpack(buffer, lengths, count)));
    await tun.inject(packet(20, 1), packet(60, 2), packet(40, 3));
    expect(received).toEqual([packet(20, 1), packet(60, 2), packet(40, 3)]);
    expect(tun.batchSizes).toEqual([3]);
  });

  it('delivers asynchronously', async () => {
    const tun = new FakeTun();
    let delivered = 0;
    tun.onPackets((_buffer, _lengths, count) => {
      delivered += count;
    });
    const done = tun.inject(packet(20, 1));
    expect(delivered).toBe(0);
    await done;
    expect(delivered).toBe(1);
  });

  it('splits batches at maxBatch', async () => {
    const tun = new FakeTun({ maxBatch: 4 });
    tun.onPackets(() => {});
    await tun.inject(...Array.from({ length: 10 }, (_, index) => packet(20, index)));
    expect(tun.batchSizes).toEqual([4, 4, 2]);
  });

  it('overwrites the buffer after the handler returns', async () => {
    const tun = new FakeTun();
    let kept: Buffer | undefined;
    tun.onPackets((buffer, lengths) => {
      kept = buffer.subarray(0, lengths[0]);
    });
    await tun.inject(packet(20, 0x45));
    expect(kept).toEqual(packet(20, 0xee));
  });

  it('queues packets until onPackets and resume', async () => {
    const tun = new FakeTun();
    tun.pause();
    const counts: number[] = [];
    tun.onPackets((_buffer, _lengths, count) => counts.push(count));
    const done = tun.inject(packet(20, 1), packet(20, 2));
    await new Promise((resolve) => setImmediate(resolve));
    expect(counts).toEqual([]);
    tun.resume();
    await done;
    expect(counts).toEqual([2]);
  });

  it('drops and counts oversize packets', async () => {
    const tun = new FakeTun({ maxPacketSize: 100 });
    const counts: number[] = [];
    tun.onPackets((_buffer, _lengths, count) => counts.push(count));
    await tun.inject(packet(101, 1), packet(100, 2));
    expect(counts).toEqual([1]);
    expect(tun.droppedOversize).toBe(1);
  });

  it('records copies of written packets', () => {
    const tun = new FakeTun();
    const frame = Buffer.concat([Buffer.alloc(8), packet(20, 0x45)]);
    expect(tun.write(frame, 8, 20)).toBe(true);
    frame.fill(0);
    expect(tun.written).toEqual([packet(20, 0x45)]);
  });

  it('rejects an offset and length outside the buffer', () => {
    const tun = new FakeTun();
    expect(() => tun.write(Buffer.alloc(20), 10, 11)).toThrow(RangeError);
  });

  it('drops writes when told to and after close', () => {
    const tun = new FakeTun();
    tun.acceptWrites = false;
    expect(tun.write(packet(20, 1))).toBe(false);
    tun.acceptWrites = true;
    tun.close();
    expect(tun.write(packet(20, 1))).toBe(false);
    expect(tun.droppedWrites).toBe(2);
    expect(tun.written).toEqual([]);
  });

  it('stops reading and reports a failure', async () => {
    const tun = new FakeTun();
    const counts: number[] = [];
    tun.onPackets((_buffer, _lengths, count) => counts.push(count));
    const failure = new Promise<AcvpnError>((resolve) => tun.onError(resolve));
    tun.pause();
    const pending = tun.inject(packet(20, 1));
    tun.fail(new AcvpnError('ENV_COMMAND_FAILED', 'TUN interface tun0 was deleted while in use'));
    tun.resume();
    await pending;
    expect((await failure).code).toBe('ENV_COMMAND_FAILED');
    expect(counts).toEqual([]);
  });
});
