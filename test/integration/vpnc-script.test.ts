// Debian's vpnc-script (package vpnc-scripts) run through runVpncScript with the environment
// buildScriptEnvironment makes from a real ocserv 1.1.6 CONNECT response, in network namespaces
// this file creates.
//
// Layout:
//   client (acvpn-vs-PID-c)  v0 198.18.80.2/24, default route via 198.18.80.1, and the TUN vs0
//                            (made by `ip tuntap add`, no process attached, so its routes show
//                            "linkdown", which the kernel accepts)
//   router (acvpn-vs-PID-r)  v1 198.18.80.1/24, and the headend address 198.18.81.1/32 on lo
// The script runs as `ip netns exec CLIENT vpnc-script`, so its `ip` commands change the client
// namespace and its /etc/resolv.conf is the bind mount of /etc/netns/CLIENT/resolv.conf. Nothing
// sends a packet.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/core/log.js';
import { parseConnectResponse } from '../../src/cstp/connect-response.js';
import { buildScriptEnvironment } from '../../src/net/script/environment.js';
import { runVpncScript } from '../../src/net/script/run-script.js';
import { loadResponseVector } from '../unit/cstp/vectors.js';

const prefix = 'acvpn-vs-';
const clientNs = `${prefix}${process.pid}-c`;
const routerNs = `${prefix}${process.pid}-r`;
const tunName = 'vs0';
const routerIp = '198.18.80.1';
const headendIp = '198.18.81.1';
const vpncScript = '/usr/share/vpnc-scripts/vpnc-script';
const scriptTimeoutMs = 30_000;

const netnsRoot = '/etc/netns';
const netnsDirectory = `${netnsRoot}/${clientNs}`;
const netnsResolvConf = `${netnsDirectory}/resolv.conf`;
const originalResolvConf = '# resolv.conf of the vpnc-script test namespace\nnameserver 198.18.80.53\nsearch home.test\n';

// vpnc-script keeps its backup of resolv.conf (and of the default route) in /var/run/vpnc on the
// host, named after VPNPID.
const vpncRunDirectory = '/run/vpnc';
const vpncRunDirectoryExisted = existsSync(vpncRunDirectory);
const netnsRootExisted = existsSync(netnsRoot);

// vpnc-script (vpnc-scripts 0.1~git20220510) hands DNS to the first resolver manager it finds,
// and each of those changes the host's resolver, not the namespace's. Only without them does it
// write /etc/resolv.conf itself, which inside the namespace is the bind mount.
const resolverManagers = ['/sbin/resolvconf', '/sbin/netconfig', '/sbin/modify_resolvconf', '/usr/sbin/unbound-control', '/usr/sbin/rcctl'];

function hostResolverManaged(): boolean {
  if (resolverManagers.some((tool) => existsSync(tool))) return true;
  // vpnc-script uses systemd-resolved only when nsswitch.conf sends host lookups to it.
  const nsswitch = existsSync('/etc/nsswitch.conf') ? readFileSync('/etc/nsswitch.conf', 'utf8') : '';
  return /^hosts:.*\bresolve\b/m.test(nsswitch);
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sweepNamespaces(): void {
  const names = ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
  for (const name of names) ip('netns', 'del', name);
  if (existsSync(netnsRoot)) {
    for (const entry of execFileSync('ls', [netnsRoot], { encoding: 'utf8' }).split('\n')) {
      if (entry.startsWith(prefix)) execFileSync('rm', ['-rf', `${netnsRoot}/${entry}`]);
    }
  }
}

interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
}

/** "DST [via GW] dev DEV" for every IPv4 route of the main table in the client namespace. */
function clientRoutes(): string[] {
  const routes = JSON.parse(ip('-n', clientNs, '-json', '-4', 'route', 'show')) as RouteEntry[];
  return routes.map((route) => `${route.dst}${route.gateway === undefined ? '' : ` via ${route.gateway}`} dev ${route.dev ?? '-'}`).sort();
}

function tunState(): { mtu: number; addresses: Array<{ local: string; address?: string; prefixlen: number }> } {
  const [link] = JSON.parse(ip('-n', clientNs, '-json', 'addr', 'show', 'dev', tunName)) as Array<{
    mtu: number;
    addr_info: Array<{ family: string; local: string; address?: string; prefixlen: number }>;
  }>;
  return { mtu: link?.mtu ?? 0, addresses: (link?.addr_info ?? []).filter((entry) => entry.family === 'inet') };
}

/** Device and inode of a file, "dev:inode", following symbolic links. */
function fileIdentity(path: string): string {
  const stat = statSync(path);
  return `${stat.dev}:${stat.ino}`;
}

// Script output, kept for failure messages.
const scriptOutput: string[] = [];
const log = createLogger({
  level: 'debug',
  json: true,
  write: (line) => {
    const record = JSON.parse(line) as { stream?: string; msg?: string };
    if (record.stream !== undefined) scriptOutput.push(`${record.stream}: ${record.msg ?? ''}`);
  },
});

function outputText(): string {
  return `vpnc-script output:\n${scriptOutput.join('\n')}`;
}

const config = (() => {
  const vector = loadResponseVector('ocserv-1.1.6-password-dtls.connect-response.txt');
  return parseConnectResponse(vector.status, vector.reason, vector.headers);
})();

function scriptEnvironment(reason: 'connect' | 'disconnect', handleDns: boolean): Record<string, string> {
  const env = buildScriptEnvironment(reason, { config, tunName, headendIp, pid: process.pid, logLevel: 1 });
  if (!handleDns) {
    // With a host resolver manager present, the script must not see DNS variables at all.
    delete env.INTERNAL_IP4_DNS;
    delete env.CISCO_DEF_DOMAIN;
    delete env.CISCO_SPLIT_DNS;
  }
  return env;
}

const namespacedScript = `ip netns exec ${clientNs} ${vpncScript}`;

describe('vpnc-script driven by runVpncScript', () => {
  const handleDns = !hostResolverManaged();
  let skipReason: string | undefined;
  let routesBefore: string[] = [];
  let hostResolvConfBefore: { identity: string; content: Buffer; mtimeMs: number };
  let connected = false;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test creates network namespaces and needs root');
    if (!existsSync(vpncScript)) {
      skipReason = `${vpncScript} is missing; install the Debian package vpnc-scripts`;
      return;
    }
    sweepNamespaces();

    ip('netns', 'add', clientNs);
    ip('netns', 'add', routerNs);
    ip('-n', clientNs, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', routerNs);
    ip('-n', clientNs, 'link', 'set', 'lo', 'up');
    ip('-n', clientNs, 'addr', 'add', '198.18.80.2/24', 'dev', 'v0');
    ip('-n', clientNs, 'link', 'set', 'v0', 'up');
    ip('-n', routerNs, 'link', 'set', 'lo', 'up');
    ip('-n', routerNs, 'addr', 'add', `${headendIp}/32`, 'dev', 'lo');
    ip('-n', routerNs, 'addr', 'add', `${routerIp}/24`, 'dev', 'v1');
    ip('-n', routerNs, 'link', 'set', 'v1', 'up');
    ip('-n', clientNs, 'route', 'add', 'default', 'via', routerIp);
    ip('-n', clientNs, 'tuntap', 'add', 'mode', 'tun', 'name', tunName);

    // `ip netns exec` bind-mounts every file of /etc/netns/NS over /etc, so the file must exist
    // before the script runs.
    await mkdir(netnsDirectory, { recursive: true });
    await writeFile(netnsResolvConf, originalResolvConf);

    const hostStat = statSync('/etc/resolv.conf');
    hostResolvConfBefore = {
      identity: fileIdentity('/etc/resolv.conf'),
      content: readFileSync('/etc/resolv.conf'),
      mtimeMs: hostStat.mtimeMs,
    };
    skipReason = await checkScriptRunsInNamespace();
    routesBefore = clientRoutes();
  });

  afterAll(async () => {
    for (const name of [clientNs, routerNs]) {
      try {
        ip('netns', 'del', name);
      } catch {
        // Not created (an earlier step failed).
      }
    }
    await rm(netnsDirectory, { recursive: true, force: true });
    if (!netnsRootExisted) await rmdir(netnsRoot).catch(() => {});
    // vpnc-script removes its backup on disconnect; a failed run may have left it.
    await rm(`${vpncRunDirectory}/resolv.conf-backup.${process.pid}`, { force: true });
    await rm(`${vpncRunDirectory}/defaultroute.${process.pid}`, { force: true });
    await rm(`${vpncRunDirectory}/defaultroute_ipv6.${process.pid}`, { force: true });
    // Only removes the directory when it is empty.
    if (!vpncRunDirectoryExisted) await rmdir(vpncRunDirectory).catch(() => {});
  });

  /**
   * Runs a probe through the same command line and returns why the test must not run the real
   * script, or undefined when it is safe. Safe means that the probe sees the client namespace's
   * network, and the bind mount of /etc/netns/CLIENT/resolv.conf in place of /etc/resolv.conf.
   */
  async function checkScriptRunsInNamespace(): Promise<string | undefined> {
    const probeFile = `${netnsDirectory}/probe.txt`;
    await runVpncScript(
      `ip netns exec ${clientNs} sh -c 'stat -L -c %d:%i /etc/resolv.conf; readlink /proc/self/ns/net' > ${probeFile}`,
      { reason: 'connect' },
      { timeoutMs: scriptTimeoutMs, log },
    );
    const [resolvConfInside = '', networkNamespace = ''] = (await readFile(probeFile, 'utf8')).trim().split('\n');
    await rm(probeFile);

    const [device = '', inode = ''] = resolvConfInside.split(':');
    const seenInside = `${BigInt(device)}:${BigInt(inode)}`;
    if (seenInside !== fileIdentity(netnsResolvConf)) {
      return (
        `inside 'ip netns exec ${clientNs}', /etc/resolv.conf (${seenInside}) is not ${netnsResolvConf} ` +
        `(${fileIdentity(netnsResolvConf)}); vpnc-script would write the host's resolv.conf, so the test does not run it`
      );
    }
    const expectedNamespace = `net:[${statSync(`/run/netns/${clientNs}`).ino}]`;
    if (networkNamespace !== expectedNamespace) {
      return `the probe ran in network namespace ${networkNamespace}, not ${expectedNamespace}; vpnc-script would change the host's routes`;
    }
    return undefined;
  }

  it('connect installs routes, address and MTU', async (context) => {
    if (skipReason !== undefined) context.skip(skipReason);

    await runVpncScript(namespacedScript, scriptEnvironment('connect', handleDns), { timeoutMs: scriptTimeoutMs, log });
    connected = true;

    const routes = clientRoutes();
    // Split includes and the pool network go into the tunnel.
    expect(routes, outputText()).toContain(`198.18.10.0/24 dev ${tunName}`);
    expect(routes, outputText()).toContain(`198.18.20.0/24 dev ${tunName}`);
    expect(routes, outputText()).toContain(`198.19.0.0/24 dev ${tunName}`);
    // The split exclude and the headend keep the original path.
    expect(routes, outputText()).toContain(`198.18.10.192/26 via ${routerIp} dev v0`);
    expect(routes, outputText()).toContain(`${headendIp} via ${routerIp} dev v0`);
    // Split tunnel: the default route is untouched.
    expect(routes, outputText()).toContain(`default via ${routerIp} dev v0`);
    expect(routes.filter((route) => route.startsWith('default')), outputText()).toHaveLength(1);

    const tun = tunState();
    expect(tun.mtu, outputText()).toBe(1334);
    expect(tun.addresses, outputText()).toEqual([expect.objectContaining({ local: '198.19.0.50', prefixlen: 32 })]);
  });

  it('connect writes the namespace resolv.conf', async (context) => {
    if (!connected) context.skip('connect did not run');
    if (!handleDns) context.skip('a resolver manager is installed on the host; DNS variables were left out');

    const written = await readFile(netnsResolvConf, 'utf8');
    const lines = written.split('\n');
    expect(lines, outputText()).toContain('nameserver 198.18.10.10');
    expect(lines, outputText()).not.toContain('nameserver 198.18.80.53');
    expect(lines.find((line) => line.startsWith('search ')), outputText()).toContain('corp.example');
  });

  it('disconnect removes routes and restores resolv.conf', async (context) => {
    if (!connected) context.skip('connect did not run');

    await runVpncScript(namespacedScript, scriptEnvironment('disconnect', handleDns), { timeoutMs: scriptTimeoutMs, log });

    const routes = clientRoutes();
    expect(routes.filter((route) => route.endsWith(`dev ${tunName}`)), outputText()).toEqual([]);
    expect(routes, outputText()).not.toContain(`198.18.10.192/26 via ${routerIp} dev v0`);
    expect(routes, outputText()).not.toContain(`${headendIp} via ${routerIp} dev v0`);
    expect(routes, outputText()).toEqual(routesBefore);
    expect(tunState().addresses, outputText()).toEqual([]);
    expect(await readFile(netnsResolvConf, 'utf8'), outputText()).toBe(originalResolvConf);
    expect(existsSync(`${vpncRunDirectory}/resolv.conf-backup.${process.pid}`)).toBe(false);
  });

  it("host's resolv.conf untouched", (context) => {
    if (!connected) context.skip('connect did not run');

    const hostStat = statSync('/etc/resolv.conf');
    expect(fileIdentity('/etc/resolv.conf')).toBe(hostResolvConfBefore.identity);
    expect(readFileSync('/etc/resolv.conf').equals(hostResolvConfBefore.content)).toBe(true);
    expect(hostStat.mtimeMs).toBe(hostResolvConfBefore.mtimeMs);
  });
});
