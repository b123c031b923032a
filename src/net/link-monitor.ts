// Watches link state changes with `ip -o monitor link`, so the session learns of a lost or
// restored network at once instead of waiting for dead-peer detection (minutes on ocserv's
// defaults). A child process keeps this free of polling and of netlink code in the addon.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../core/log.js';

export interface LinkChange {
  /** Interface name without the "@peer" suffix of veth and VLAN devices. */
  name: string;
  /** True when the link is administratively up and has carrier (no NO-CARRIER flag). */
  up: boolean;
  deleted: boolean;
}

/**
 * Parses one line of `ip -o monitor link`, e.g.
 * "3: eth0@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN ..."
 * or "Deleted 3: eth0@if2: <BROADCAST,MULTICAST> ...". Returns undefined for other lines.
 */
export function parseLinkLine(line: string): LinkChange | undefined {
  const match = /^(Deleted )?(?:\[LINK\])?\s*\d+: ([^:@\s]+)(?:@[^:\s]+)?: <([^>]*)>/.exec(line.trim());
  if (match === null) return undefined;
  const flags = (match[3] ?? '').split(',');
  const deleted = match[1] !== undefined;
  return {
    name: match[2] ?? '',
    up: !deleted && flags.includes('UP') && !flags.includes('NO-CARRIER'),
    deleted,
  };
}

export class LinkMonitor {
  private child: ChildProcess | undefined;

  constructor(
    private readonly onChange: (change: LinkChange) => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    const child = spawn('ip', ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.on('error', (error) => {
      // Without the monitor, dead-peer detection still finds a lost network, only later.
      this.log.warn({ err: error }, 'cannot watch link changes with ip monitor; relying on dead-peer detection');
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.log.debug({ code, signal }, 'ip monitor exited');
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const change = parseLinkLine(line);
      if (change !== undefined) this.onChange(change);
    });
  }

  stop(): void {
    const child = this.child;
    this.child = undefined;
    if (child !== undefined && child.exitCode === null) child.kill('SIGTERM');
  }
}
