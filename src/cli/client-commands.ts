// The commands that talk to a running `acvpn daemon` over its control socket:
//
//   acvpn status [--json]   acvpn stats [--json]   acvpn disconnect   acvpn reconnect   acvpn events
//
// All take --socket PATH (default <run-dir>/control.sock) and end with the exit code of the
// README table: 6 when no daemon listens, otherwise the class of the daemon's error.

import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { AcvpnError, ExitCode, toAcvpnError } from '../core/errors.js';
import { redactText } from '../core/redact.js';
import { ControlClient, DaemonError } from '../control/client.js';
import { defaultRunDir } from './daemon-command.js';

export type ClientCommand = 'status' | 'disconnect' | 'events' | 'stats' | 'reconnect';

interface ClientOptions {
  socketPath: string;
  json: boolean;
}

export const clientUsageText = `Usage: acvpn status [--json] [--socket PATH]
       acvpn stats [--json] [--socket PATH]
       acvpn disconnect [--socket PATH]
       acvpn reconnect [--socket PATH]
       acvpn events [--socket PATH]

Talk to a running acvpn daemon. status shows the session, stats its traffic counters, disconnect
logs off, reconnect opens a new tunnel with the same login, and events prints every event as a
JSON line until interrupted.

      --socket PATH          control socket (default <run-dir>/control.sock)
      --run-dir DIR          runtime directory for the default socket path
      --json                 print the daemon's answer as JSON (status and stats)
`;

export async function runClientCommand(command: ClientCommand, argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(clientUsageText);
    return ExitCode.ok;
  }
  let client: ControlClient | undefined;
  try {
    const options = parseClientArgs(command, argv, process.env);
    client = await ControlClient.connect(options.socketPath);
    switch (command) {
      case 'status':
        return await printResult(client, 'status', options.json, formatStatus);
      case 'stats':
        return await printResult(client, 'stats', options.json, formatStats);
      case 'disconnect':
        return await printResult(client, 'disconnect', false, (result) => (result.state === 'idle' ? 'no session was active\n' : 'disconnected\n'));
      case 'reconnect':
        return await printResult(client, 'reconnect', false, (result) => `reconnecting (state ${String(result.state)})\n`);
      case 'events':
        return await streamEvents(client);
    }
    throw new AcvpnError('USAGE', `unknown client command ${JSON.stringify(command)}`);
  } catch (error) {
    return reportError(error);
  } finally {
    client?.close();
  }
}

function parseClientArgs(command: ClientCommand, argv: string[], env: NodeJS.ProcessEnv): ClientOptions {
  const acceptsJson = command === 'status' || command === 'stats';
  let values: { socket?: string; 'run-dir'?: string; json?: boolean };
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: { socket: { type: 'string' }, 'run-dir': { type: 'string' }, json: { type: 'boolean' } },
    }).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AcvpnError('USAGE', `${message}; run acvpn ${command} --help for the options`);
  }
  if (values.json === true && !acceptsJson) throw new AcvpnError('USAGE', `acvpn ${command} has no --json option; run acvpn ${command} --help for the options`);
  return {
    socketPath: values.socket ?? join(values['run-dir'] ?? defaultRunDir(env), 'control.sock'),
    json: values.json ?? false,
  };
}

async function printResult(
  client: ControlClient,
  method: string,
  json: boolean,
  format: (result: Record<string, unknown>) => string,
): Promise<number> {
  const result = (await client.call(method)) as Record<string, unknown>;
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : format(result));
  return ExitCode.ok;
}

/** Prints events until SIGINT or SIGTERM (exit 0) or until the daemon goes away (exit 6). */
async function streamEvents(client: ControlClient): Promise<number> {
  client.onEvent((event) => process.stdout.write(`${JSON.stringify(event)}\n`));
  const ended = new Promise<number>((resolve) => {
    let stopped = false;
    const stop = (): void => {
      // The close that follows (client.close() in the caller) is then not a daemon failure.
      stopped = true;
      resolve(ExitCode.ok);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    client.onClose(() => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      if (stopped) return;
      process.stderr.write('acvpn: the daemon closed the event stream\n');
      resolve(ExitCode.network);
    });
  });
  await client.call('subscribe');
  return ended;
}

// ── human-readable output ─────────────────────────────────────────────────────────────────────

function formatStatus(status: Record<string, unknown>): string {
  const state = String(status.state);
  if (state === 'idle') {
    const end = status.lastEnd as { at?: string; message?: string; code?: string } | undefined;
    const last = end === undefined ? '' : `last session ended ${end.at ?? ''}: ${end.message ?? ''}${end.code === undefined ? '' : ` (${end.code})`}\n`;
    return `state:      idle (no session)\n${last}`;
  }
  const lines = [`state:      ${state}`];
  if (status.url !== undefined) lines.push(`headend:    ${String(status.url)}${status.user === undefined ? '' : ` as ${String(status.user)}`}`);
  if (status.interface !== undefined) lines.push(`interface:  ${String(status.interface)}${status.mtu === undefined ? '' : ` (MTU ${String(status.mtu)})`}`);
  const addresses = [status.address, status.address6].filter((address) => address !== undefined).map(String);
  if (addresses.length > 0) lines.push(`address:    ${addresses.join(', ')}`);
  lines.push(`channel:    ${String(status.channel)}${status.dtlsSuite === undefined ? '' : ` (${String(status.dtlsSuite)})`}`);
  const dns = status.dnsServers as string[] | undefined;
  if (dns !== undefined && dns.length > 0) lines.push(`dns:        ${dns.join(', ')}`);
  if (status.connectedSince !== undefined) lines.push(`since:      ${String(status.connectedSince)}`);
  lines.push(`reconnects: ${String(status.reconnects ?? 0)}`);
  if (typeof status.openQuestions === 'number' && status.openQuestions > 0) {
    lines.push(`waiting:    ${status.openQuestions} open prompt(s); answer them through the control API`);
  }
  return `${lines.join('\n')}\n`;
}

function formatStats(stats: Record<string, unknown>): string {
  if (stats.state === 'idle') return 'state: idle (no session)\n';
  const totals = stats.totals as Record<string, number>;
  const lines = [
    `state:    ${String(stats.state)} (channel ${String(stats.channel)})`,
    `sent:     ${totals.packetsSent} packets, ${totals.bytesSent} bytes`,
    `received: ${totals.packetsReceived} packets, ${totals.bytesReceived} bytes`,
    `dropped:  ${totals.packetsDropped} packets`,
  ];
  for (const name of ['cstp', 'dtls'] as const) {
    const counters = stats[name] as Record<string, number> | undefined;
    if (counters === undefined) continue;
    lines.push(
      `${name}:     sent ${counters.packetsSent}/${counters.bytesSent} B, received ${counters.packetsReceived}/${counters.bytesReceived} B, dropped ${counters.packetsDropped}, DPD requests ${counters.dpdRequestsSent}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function reportError(error: unknown): number {
  if (error instanceof DaemonError) {
    const code = error.code === undefined ? '' : ` (${error.code})`;
    process.stderr.write(`acvpn: ${redactText(error.message)}${code}\n`);
    return error.exitCode;
  }
  const failure = toAcvpnError(error);
  process.stderr.write(`acvpn: ${redactText(failure.message)}\n`);
  return failure.exitCode;
}
