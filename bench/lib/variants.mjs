// Client variants: one client program in one transport mode. Each variant builds the command
// line that connects it to the benchmark headend, and carries the output pattern that shows
// whether DTLS actually carried the data.

import { fileURLToPath } from 'node:url';

const ACVPN_BIN = fileURLToPath(new URL('../../bin/acvpn.js', import.meta.url));
const OPENCONNECT_SCRIPT = fileURLToPath(new URL('../openconnect-script.sh', import.meta.url));

/** The group every variant logs in to. ocserv pushes split-include routes for the lan to it. */
const AUTH_GROUP = 'staff';

/**
 * Both clients run in the same namespace one at a time, but each gets its own TUN name so a
 * device left over from one run can never be mistaken for the next run's.
 */
const ACVPN_INTERFACE = 'bench-acvpn0';
const OPENCONNECT_INTERFACE = 'bench-oc0';

/** openconnect 9.01 prints this line once the DTLS handshake has finished. */
const OPENCONNECT_DTLS_UP = /Established DTLS connection/;

/**
 * acvpn with --json-logs writes this event when data moves to the DTLS channel. NOTE: it matches
 * once DTLS was up at any time in the run, so a fall back to CSTP mid-run still counts as DTLS.
 */
const ACVPN_DTLS_UP = /"event":"channel","channel":"dtls"/;

function acvpnCommand(context, { dtls }) {
  const argv = [
    process.execPath,
    ACVPN_BIN,
    'connect',
    '--user', context.user,
    '--passwd-on-stdin',
    '--authgroup', AUTH_GROUP,
    '--cafile', context.caFile,
    '--non-interactive',
    '--interface', ACVPN_INTERFACE,
    // The run directory contains the route undo file. A private one keeps the host's /run/acvpn
    // out of the benchmark.
    '--run-dir', context.acvpnRunDir,
    '--state-dir', context.acvpnStateDir,
    '--json-logs',
  ];
  if (!dtls) argv.push('--no-dtls');
  argv.push(context.url);
  return { argv, input: `${context.password}\n`, env: process.env };
}

function openconnectCommand(context, { dtls }) {
  const argv = [
    'openconnect',
    '--protocol=anyconnect',
    '--user', context.user,
    '--passwd-on-stdin',
    '--authgroup', AUTH_GROUP,
    '--cafile', context.caFile,
    '--non-inter',
    '--interface', OPENCONNECT_INTERFACE,
    '--script', OPENCONNECT_SCRIPT,
  ];
  if (!dtls) argv.push('--no-dtls');
  argv.push(context.url);
  // openconnect passes its own environment on to the script, which reads the route from here.
  const env = { ...process.env, BENCH_ROUTE: context.lanNetwork };
  return { argv, input: `${context.password}\n`, env };
}

/**
 * Every variant the benchmark can run. `peer` names the variant of the other client in the same
 * transport mode, which the report compares against.
 */
export const VARIANTS = [
  {
    name: 'acvpn-cstp',
    client: 'acvpn',
    transport: 'cstp',
    peer: 'openconnect-cstp',
    interfaceName: ACVPN_INTERFACE,
    command: (context) => acvpnCommand(context, { dtls: false }),
    dtlsPattern: ACVPN_DTLS_UP,
  },
  {
    name: 'acvpn-dtls',
    client: 'acvpn',
    transport: 'dtls',
    peer: 'openconnect-dtls',
    interfaceName: ACVPN_INTERFACE,
    command: (context) => acvpnCommand(context, { dtls: true }),
    dtlsPattern: ACVPN_DTLS_UP,
  },
  {
    name: 'openconnect-cstp',
    client: 'openconnect',
    transport: 'cstp',
    peer: 'acvpn-cstp',
    interfaceName: OPENCONNECT_INTERFACE,
    command: (context) => openconnectCommand(context, { dtls: false }),
    dtlsPattern: OPENCONNECT_DTLS_UP,
  },
  {
    name: 'openconnect-dtls',
    client: 'openconnect',
    transport: 'dtls',
    peer: 'acvpn-dtls',
    interfaceName: OPENCONNECT_INTERFACE,
    command: (context) => openconnectCommand(context, { dtls: true }),
    dtlsPattern: OPENCONNECT_DTLS_UP,
  },
];

/** acvpn over CSTP against openconnect over CSTP, with openconnect over DTLS as a reference row. */
export const DEFAULT_VARIANTS = ['acvpn-dtls', 'openconnect-dtls', 'acvpn-cstp', 'openconnect-cstp'];

/** Returns the variants named in a comma-separated list, in that order. Throws on an unknown name. */
export function selectVariants(list) {
  const names = list.split(',').map((name) => name.trim()).filter((name) => name !== '');
  if (names.length === 0) throw new Error('--variants is empty; name at least one variant');
  return names.map((name) => {
    const variant = VARIANTS.find((candidate) => candidate.name === name);
    if (variant === undefined) {
      const known = VARIANTS.map((candidate) => candidate.name).join(', ');
      throw new Error(`unknown variant '${name}'; known variants: ${known}`);
    }
    return variant;
  });
}
