// `acvpn connect` when an acvpn daemon already runs: the request goes to the daemon over its
// control socket instead of starting a second session in this process (the daemon owns the TUN
// device and routes). The command waits until the tunnel is up or the login failed, prints the
// status, and leaves the session running in the daemon.

import { existsSync } from 'node:fs';
import { ExitCode } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { ControlClient, DaemonError } from '../control/client.js';
import type { ConnectOptions } from './args.js';

/**
 * Opens the daemon's control socket when a daemon listens there; undefined when none runs (no
 * socket file, or a stale file without a listener).
 */
export async function findDaemon(socketPath: string): Promise<ControlClient | undefined> {
  if (!existsSync(socketPath)) return undefined;
  try {
    return await ControlClient.connect(socketPath);
  } catch {
    return undefined;
  }
}

/** Sends the connect request; returns the exit code. Secrets go in the request, never in logs. */
export async function connectViaDaemon(
  client: ControlClient,
  options: ConnectOptions,
  secrets: { password?: string; certificatePassword?: string },
  log: Logger,
): Promise<number> {
  const params: Record<string, unknown> = {
    url: options.url.href,
    wait: true,
    interactive: false,
    interface: options.interfaceName,
    dtls: options.dtls,
    dns: options.manageDns,
    netroam: options.netroam,
    trust: options.trust,
  };
  if (options.user !== undefined) params.user = options.user;
  if (secrets.password !== undefined) params.password = secrets.password;
  if (options.authgroup !== undefined) params.group = options.authgroup;
  if (options.formEntries.size > 0) params.formEntries = Object.fromEntries(options.formEntries);
  if (options.caFile !== undefined) params.cafile = options.caFile;
  if (options.pins.length > 0) params.servercert = options.pins;
  if (options.trustAnswer !== undefined) params.trustAnswer = options.trustAnswer;

  log.info({ url: options.url.href }, 'an acvpn daemon is running; handing the connection to it');
  try {
    const status = (await client.call('connect', params)) as Record<string, unknown>;
    process.stdout.write(`${JSON.stringify(status)}\n`);
    log.info({ state: status.state, address: status.address, channel: status.channel }, 'the daemon brought the tunnel up; acvpn disconnect ends it');
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof DaemonError) {
      log.error({ code: error.code, exitCode: error.exitCode }, error.message);
      return error.exitCode;
    }
    throw error;
  } finally {
    client.close();
  }
}
