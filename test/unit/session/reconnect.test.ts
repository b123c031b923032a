import { describe, expect, it } from 'vitest';
import { AcvpnError, type ErrorCode } from '../../../src/core/errors.js';
import { isRecoverable, reconnectDelayMs, shouldGiveUp } from '../../../src/session/reconnect.js';
import { parseLinkLine } from '../../../src/net/link-monitor.js';

describe('reconnect policy', () => {
  it('backs off to ten seconds', () => {
    expect([0, 1, 2, 3, 4, 50].map(reconnectDelayMs)).toEqual([1000, 2000, 4000, 8000, 10000, 10000]);
  });

  it('never gives up with roaming on', () => {
    expect(shouldGiveUp({ netroam: true, giveUpAfterMs: 20_000 }, 0, 3_600_000)).toBe(false);
  });

  it('gives up after 20 s with roaming off', () => {
    const policy = { netroam: false, giveUpAfterMs: 20_000 };
    expect(shouldGiveUp(policy, 1000, 20_999)).toBe(false);
    expect(shouldGiveUp(policy, 1000, 21_000)).toBe(true);
  });

  it.each<[ErrorCode, boolean]>([
    ['NETWORK_UNREACHABLE', true],
    ['TLS_FAILED', true],
    ['CSTP_PEER_DEAD', true],
    ['CONNECT_REFUSED', true],
    ['COOKIE_REJECTED', false],
    ['SESSION_TERMINATED', false],
    ['SERVER_UNTRUSTED', false],
    ['AUTH_REJECTED', false],
  ])('%s recoverable: %s', (code, expected) => {
    expect(isRecoverable(new AcvpnError(code, 'x'))).toBe(expected);
  });
});

describe('parseLinkLine', () => {
  it('reads an up veth', () => {
    expect(parseLinkLine('5: tmpveth1@tmpveth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 32:8d')).toEqual({
      name: 'tmpveth1',
      up: true,
      deleted: false,
    });
  });

  it('reads a link without carrier as down', () => {
    expect(parseLinkLine('6: to-hub@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state LOWERLAYERDOWN')?.up).toBe(false);
  });

  it('reads an administratively down link', () => {
    expect(parseLinkLine('3: eth0: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN')?.up).toBe(false);
  });

  it('reads a deleted link', () => {
    expect(parseLinkLine('Deleted 6: tmpveth0@NONE: <BROADCAST,MULTICAST> mtu 1500')).toEqual({ name: 'tmpveth0', up: false, deleted: true });
  });

  it('ignores other lines', () => {
    expect(parseLinkLine('    link/ether 32:8d:8c:a3:4c:95')).toBeUndefined();
  });
});
