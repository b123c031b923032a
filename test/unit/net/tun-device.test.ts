// The TypeScript side of the TUN device against a scripted addon: name checks, errno mapping,
// write policy and handler wiring. The real addon is exercised in test/integration/tun.test.ts.

import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { AcvpnError } from '../../../src/core/errors.js';
import type { TunAddon, TunHandle, TunSystemError } from '../../../src/net/tun/tun-addon.js';
import { loadTunAddon } from '../../../src/net/tun/tun-addon.js';
import { openTun, type TunDevice } from '../../../src/net/tun/tun-device.js';
import { validateInterfaceName } from '../../../src/net/tun/tun-errors.js';

const errno = constants.errno;

function systemError(code: string, syscall: string, interfaceName = ''): TunSystemError {
  const error = new Error(`${syscall} failed: ${code}`) as TunSystemError;
  error.code = code;
  error.errno = -1;
  error.syscall = syscall;
  error.interfaceName = interfaceName;
  return error;
}

class ScriptedHandle implements TunHandle {
  fd = 42;
  droppedOversize = 0;
  writeResult = 0;
  readonly calls: string[] = [];
  readonly writes: { buffer: Uint8Array; offset: number; length: number }[] = [];
  onPackets: ((buffer: Buffer, lengths: Uint32Array, count: number) => void) | undefined;
  onError: ((error: TunSystemError) => void) | undefined;

  constructor(readonly name: string) {}

  start(onPackets: (buffer: Buffer, lengths: Uint32Array, count: number) => void, onError: (error: TunSystemError) => void): void {
    this.calls.push('start');
    this.onPackets = onPackets;
    this.onError = onError;
  }
  pause(): void {
    this.calls.push('pause');
  }
  resume(): void {
    this.calls.push('resume');
  }
  write(buffer: Uint8Array, offset: number, length: number): number {
    this.writes.push({ buffer, offset, length });
    return this.writeResult < 0 ? this.writeResult : length;
  }
  /** errno of a packet index in the whole batch, as the addon would fail it. */
  readonly batchFailures = new Map<number, number>();
  private batchBase = 0;
  writeBatch(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number, status: Int32Array): number {
    // The device calls again with subarrays after a failure: find the batch index of offsets[0].
    this.batchBase = offsets.byteOffset / 4;
    for (let index = 0; index < count; index += 1) {
      const failure = this.batchFailures.get(this.batchBase + index);
      if (failure !== undefined) {
        status[0] = failure;
        return index;
      }
      this.writes.push({ buffer, offset: offsets[index]!, length: lengths[index]! });
    }
    return count;
  }
  close(): void {
    this.calls.push('close');
    this.fd = -1;
  }
}

class ScriptedAddon implements TunAddon {
  readonly maxNameLength = 15;
  readonly opened: { name: string; maxPacketSize: number; maxBatch: number }[] = [];
  openFailure: unknown;
  handle: ScriptedHandle | undefined;

  open(name: string, maxPacketSize: number, maxBatch: number): TunHandle {
    this.opened.push({ name, maxPacketSize, maxBatch });
    if (this.openFailure !== undefined) throw this.openFailure;
    this.handle = new ScriptedHandle(name === '' ? 'tun7' : name);
    return this.handle;
  }
  openUdp(): TunHandle {
    throw new Error('the scripted addon has no UDP sockets');
  }
  readonly Aead = class {
    constructor() {
      throw new Error('the scripted addon has no AEAD');
    }
  } as unknown as TunAddon['Aead'];
}

function openScripted(name = 'acvpn0'): { device: TunDevice; handle: ScriptedHandle; addon: ScriptedAddon } {
  const addon = new ScriptedAddon();
  const device = openTun({ name }, addon);
  if (addon.handle === undefined) throw new Error('the scripted addon opened no handle');
  return { device, handle: addon.handle, addon };
}

function caught(action: () => unknown): AcvpnError {
  try {
    action();
  } catch (error) {
    if (AcvpnError.is(error)) return error;
    throw error;
  }
  throw new Error('expected an AcvpnError, but nothing was thrown');
}

describe('validateInterfaceName', () => {
  it.each(['', 'acvpn0', 'vpn%d', 'a'.repeat(15), 'tun-é', 'x.y'])('accepts %j', (name) => {
    expect(() => validateInterfaceName(name)).not.toThrow();
  });

  it.each([
    ['a'.repeat(16), /16 bytes long, but Linux allows at most 15/],
    ['é'.repeat(8), /16 bytes long/],
    ['.', /reserved/],
    ['..', /reserved/],
    ['a/b', /contains "\/"/],
    ['a:1', /contains ":"/],
    ['a b', /contains " "/],
    ['a\tb', /contains "\\t"/],
    ['a%s', /"%" only once, as "%d"/],
    ['a%d%d', /"%" only once/],
    ['a%', /"%" only once/],
    ['tun-à', /includes byte 0xA0/],
  ])('rejects %j', (name, message) => {
    const error = caught(() => validateInterfaceName(name));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(message);
    expect(error.details.interface).toBe(name);
  });
});

describe('openTun', () => {
  it('passes the name and default limits to the addon', () => {
    const addon = new ScriptedAddon();
    const device = openTun({}, addon);
    expect(addon.opened).toEqual([{ name: '', maxPacketSize: 65535, maxBatch: 64 }]);
    expect(device.name).toBe('tun7');
  });

  it('passes explicit limits to the addon', () => {
    const addon = new ScriptedAddon();
    openTun({ name: 'vpn%d', maxPacketSize: 2048, maxBatch: 8 }, addon);
    expect(addon.opened).toEqual([{ name: 'vpn%d', maxPacketSize: 2048, maxBatch: 8 }]);
  });

  it('rejects a long name before loading the addon', () => {
    const addon = new ScriptedAddon();
    const error = caught(() => openTun({ name: 'acvpn-tunnel-0001' }, addon));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('"acvpn-tunnel-0001" is 17 bytes long');
    expect(addon.opened).toEqual([]);
  });

  it.each([
    ['maxPacketSize', { maxPacketSize: 67 }],
    ['maxPacketSize', { maxPacketSize: 65536 }],
    ['maxPacketSize', { maxPacketSize: 1500.5 }],
    ['maxBatch', { maxBatch: 0 }],
    ['maxBatch', { maxBatch: 1025 }],
  ])('rejects %s out of range (%j)', (option, limits) => {
    const addon = new ScriptedAddon();
    const error = caught(() => openTun({ name: 'acvpn0', ...limits }, addon));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain(`TUN option ${option}`);
    expect(addon.opened).toEqual([]);
  });

  it.each([
    ['open', 'ENOENT', 'ENV_NO_TUN', /\/dev\/net\/tun does not exist.*modprobe tun/],
    ['open', 'ENODEV', 'ENV_NO_TUN', /tun driver is not loaded.*modprobe tun/],
    ['open', 'EACCES', 'ENV_NOT_ROOT', /cannot open \/dev\/net\/tun \(EACCES\).*CAP_NET_ADMIN/],
    ['open', 'EMFILE', 'INTERNAL', /opening \/dev\/net\/tun failed/],
    ['ioctl', 'EPERM', 'ENV_NOT_ROOT', /creating TUN interface acvpn0 was not permitted \(EPERM\).*root/],
    ['ioctl', 'EBUSY', 'ENV_COMMAND_FAILED', /TUN interface acvpn0 is already in use by another process \(EBUSY\)/],
    ['ioctl', 'EINVAL', 'ENV_COMMAND_FAILED', /exists and is not a TUN device/],
    ['ioctl', 'ENOMEM', 'INTERNAL', /creating TUN interface acvpn0 failed/],
  ] as const)('maps %s %s to %s', (syscall, code, expected, message) => {
    const addon = new ScriptedAddon();
    addon.openFailure = systemError(code, syscall, 'acvpn0');
    const error = caught(() => openTun({ name: 'acvpn0' }, addon));
    expect(error.code).toBe(expected);
    expect(error.message).toMatch(message);
    expect(error.details).toEqual({ interface: 'acvpn0', errno: code, syscall });
    expect(error.cause).toBe(addon.openFailure);
  });

  it('exits with the environment status for a missing /dev/net/tun', () => {
    const addon = new ScriptedAddon();
    addon.openFailure = systemError('ENOENT', 'open');
    expect(caught(() => openTun({}, addon)).exitCode).toBe(7);
  });

  it('names a kernel-picked interface generically in errors', () => {
    const addon = new ScriptedAddon();
    addon.openFailure = systemError('EPERM', 'ioctl');
    expect(caught(() => openTun({}, addon)).message).toMatch(/^creating a TUN interface was not permitted/);
  });
});

describe('loadTunAddon', () => {
  it('reports a missing build as INTERNAL', () => {
    const error = caught(() => loadTunAddon('/nonexistent/acvpn_tun.node'));
    expect(error.code).toBe('INTERNAL');
    expect(error.message).toContain('/nonexistent/acvpn_tun.node');
    expect(error.message).toContain('npm run build:native');
  });

  it('reports a file that is not an addon as INTERNAL', () => {
    const error = caught(() => loadTunAddon(new URL(import.meta.url).pathname));
    expect(error.code).toBe('INTERNAL');
    expect(error.message).toContain('npm run build:native');
  });
});

describe('TunDevice.write', () => {
  it('passes the whole packet by default', () => {
    const { device, handle } = openScripted();
    const packet = Buffer.alloc(40, 0x45);
    expect(device.write(packet)).toBe(true);
    expect(handle.writes).toEqual([{ buffer: packet, offset: 0, length: 40 }]);
  });

  it('passes an offset and the rest of the buffer', () => {
    const { device, handle } = openScripted();
    const frame = Buffer.alloc(48);
    expect(device.write(frame, 8)).toBe(true);
    expect(handle.writes[0]).toMatchObject({ offset: 8, length: 40 });
  });

  it.each(['EAGAIN', 'ENOBUFS', 'ENOMEM', 'EINVAL', 'EIO'] as const)('returns false on %s', (code) => {
    const { device, handle } = openScripted();
    handle.writeResult = -errno[code];
    expect(device.write(Buffer.alloc(20))).toBe(false);
  });

  it('throws ENV_COMMAND_FAILED when the interface was deleted', () => {
    const { device, handle } = openScripted();
    handle.writeResult = -77; // EBADFD on Linux
    const error = caught(() => device.write(Buffer.alloc(20)));
    expect(error.code).toBe('ENV_COMMAND_FAILED');
    expect(error.message).toMatch(/TUN interface acvpn0 was deleted while in use \(EBADFD\)/);
    expect(error.details).toMatchObject({ interface: 'acvpn0', errno: 'EBADFD', syscall: 'write' });
  });

  it('throws INTERNAL on an unexpected errno', () => {
    const { device, handle } = openScripted();
    handle.writeResult = -errno.EFAULT;
    const error = caught(() => device.write(Buffer.alloc(20)));
    expect(error.code).toBe('INTERNAL');
    expect(error.message).toContain('EFAULT');
  });

  it('returns false after close without calling the addon', () => {
    const { device, handle } = openScripted();
    device.close();
    expect(device.write(Buffer.alloc(20))).toBe(false);
    expect(handle.writes).toEqual([]);
  });
});

describe('TunDevice.writeBatch', () => {
  const batch = (lengths: number[]) => {
    const offsets = new Uint32Array(lengths.length);
    let offset = 0;
    lengths.forEach((length, index) => {
      offsets[index] = offset;
      offset += length;
    });
    return { buffer: Buffer.alloc(offset), offsets, lengths: Uint32Array.from(lengths) };
  };

  it('writes every packet in one call', () => {
    const { device, handle } = openScripted();
    const { buffer, offsets, lengths } = batch([20, 40, 60]);
    expect(device.writeBatch!(buffer, offsets, lengths, 3)).toBe(0);
    expect(handle.writes.map((write) => [write.offset, write.length])).toEqual([
      [0, 20],
      [20, 40],
      [60, 60],
    ]);
  });

  it('counts dropped packets and writes the rest', () => {
    const { device, handle } = openScripted();
    handle.batchFailures.set(1, errno.EAGAIN);
    handle.batchFailures.set(2, errno.EINVAL);
    const { buffer, offsets, lengths } = batch([20, 40, 60, 80]);
    expect(device.writeBatch!(buffer, offsets, lengths, 4)).toBe(2);
    expect(handle.writes.map((write) => write.offset)).toEqual([0, 120]);
  });

  it('throws ENV_COMMAND_FAILED when the interface was deleted', () => {
    const { device, handle } = openScripted();
    handle.batchFailures.set(0, 77); // EBADFD on Linux
    const { buffer, offsets, lengths } = batch([20]);
    const error = caught(() => device.writeBatch!(buffer, offsets, lengths, 1));
    expect(error.code).toBe('ENV_COMMAND_FAILED');
  });

  it('drops the whole batch after close', () => {
    const { device, handle } = openScripted();
    device.close();
    const { buffer, offsets, lengths } = batch([20, 40]);
    expect(device.writeBatch!(buffer, offsets, lengths, 2)).toBe(2);
    expect(handle.writes).toHaveLength(0);
  });
});

describe('TunDevice reading', () => {
  it('starts reading once and lets a later handler replace the first', () => {
    const { device, handle } = openScripted();
    const seen: string[] = [];
    device.onPackets(() => seen.push('first'));
    device.onPackets((_buffer, _lengths, count) => seen.push(`second:${count}`));
    handle.onPackets?.(Buffer.alloc(8), new Uint32Array([8]), 1);
    expect(handle.calls).toEqual(['start']);
    expect(seen).toEqual(['second:1']);
  });

  it('passes the batch through unchanged', () => {
    const { device, handle } = openScripted();
    let received: [Buffer, Uint32Array, number] | undefined;
    device.onPackets((buffer, lengths, count) => {
      received = [buffer, lengths, count];
    });
    const buffer = Buffer.from('0102030405', 'hex');
    const lengths = new Uint32Array([2, 3, 99]);
    handle.onPackets?.(buffer, lengths, 2);
    expect(received?.[0]).toBe(buffer);
    expect(received?.[1]).toBe(lengths);
    expect(received?.[2]).toBe(2);
  });

  it('maps a read failure for the error handler', () => {
    const { device, handle } = openScripted();
    const errors: AcvpnError[] = [];
    device.onError((error) => errors.push(error));
    device.onPackets(() => {});
    handle.onError?.(systemError('EBADFD', 'read', 'acvpn0'));
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('ENV_COMMAND_FAILED');
    expect(errors[0]?.message).toContain('was deleted while in use');
  });

  it('throws a read failure when no error handler is set', () => {
    const { device, handle } = openScripted();
    device.onPackets(() => {});
    const error = caught(() => handle.onError?.(systemError('EIO', 'read', 'acvpn0')));
    expect(error.code).toBe('INTERNAL');
    expect(error.message).toContain('TUN interface acvpn0 failed');
  });

  it('forwards pause and resume', () => {
    const { device, handle } = openScripted();
    device.pause();
    device.resume();
    expect(handle.calls).toEqual(['pause', 'resume']);
  });

  it('closes the handle once', () => {
    const { device, handle } = openScripted();
    device.close();
    device.close();
    expect(handle.calls).toEqual(['close']);
  });

  it('does not start reading after close', () => {
    const { device, handle } = openScripted();
    device.close();
    device.onPackets(() => {});
    expect(handle.calls).toEqual(['close']);
  });
});
