// Installs a route plan with `ip` and takes it out again.
//
// RouteManager remembers exactly the routes it added, so restore() removes those and nothing
// else. All routes of a plan go to one `ip -force -batch -` run fed through stdin: on the
// development machine 100 route changes took about 6 ms that way, against about 4 ms per route
// with one ip process each. With -force, ip carries on after a failed line and reports each one
// as "Command failed -:N" after its error message, so the lines it does not name went in.
//
// The undo file lists the same routes as JSON, so that `acvpn cleanup` can remove what a killed
// process left behind (RouteManager.undoFromFile).

import { chmod, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AcvpnError } from '../../core/errors.js';
import { formatNetwork, parseIp } from '../../core/ip.js';
import { createLogger, type Logger } from '../../core/log.js';
import { assertInterfaceName, ipStderr, type IpRunner } from '../ip-command.js';
import { parseDestination } from './host-state.js';
import type { RouteEntry, RoutePlan } from './plan.js';

/** A route as installed in the main table: what `ip route del` needs to find it again. */
export interface InstalledRoute {
  /** "10.1.0.0/16" or "2001:db8::/32". */
  destination: string;
  gateway?: string;
  dev: string;
}

interface UndoFileContent {
  version: 1;
  routes: InstalledRoute[];
}

// Errors of `ip route del` that mean the route is gone already: the kernel removes a device's
// routes with the device (the TUN device closes when its process ends) and removes IPv4 routes
// through a device whose last IPv4 address is deleted.
const alreadyGonePattern = /No such process|Cannot find device|No such device/;

export class RouteManager {
  private installed: InstalledRoute[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly run: IpRunner,
    private readonly log: Logger,
    private readonly options: { undoFile?: string } = {},
  ) {}

  /** The routes this manager added and has not removed yet, in the order they were added. */
  get routes(): readonly InstalledRoute[] {
    return this.installed;
  }

  /**
   * Installs every route of `plan`. When one fails, removes the routes of this plan that did go
   * in and raises 'ENV_COMMAND_FAILED' naming the failed routes. Updates the undo file, if any.
   */
  apply(plan: RoutePlan): Promise<void> {
    return this.serialize(async () => {
      const routes = plan.routes.map((entry) => toInstalledRoute(entry, plan.tunName));
      const lines = routes.map((route, index) => {
        // `replace` for the headend's host route: one left by a session that died between the
        // host-state read and this batch must not stop the tunnel from coming up. A host route to
        // the headend that exists when the session starts is never replaced: the plan then adds none.
        const verb = plan.routes[index]?.role === 'headend' ? 'replace' : 'add';
        return ['route', verb, ...routeSpec(route)];
      });

      const outcome = await runBatch(this.run, lines);
      const added = routes.filter((_, index) => outcome.known && !outcome.failures.has(index));
      for (const route of added) this.log.debug({ route: describeRoute(route) }, 'route added');
      this.installed.push(...added);

      if (outcome.known && outcome.failures.size === 0) {
        await this.saveUndoFile();
        return;
      }

      // When ip's report could not be read, any of the routes may be in: try to remove them all.
      // NOTE: in that case an identical route that existed before this plan is removed as well.
      const rollback = outcome.known ? added : routes;
      this.installed = this.installed.filter((route) => !rollback.includes(route));
      const left = await deleteRoutes(this.run, this.log, [...rollback].reverse());
      this.installed.push(...left);
      await this.saveUndoFile();
      throw applyError(lines, outcome);
    });
  }

  /**
   * Removes the routes this manager added, newest first. Routes that vanished already count as
   * removed, so calling it twice is harmless. Raises 'ENV_COMMAND_FAILED' when a route could not
   * be removed; those stay listed (and in the undo file) for the next call.
   */
  restore(): Promise<void> {
    return this.serialize(async () => {
      const left = await deleteRoutes(this.run, this.log, [...this.installed].reverse());
      this.installed = this.installed.filter((route) => left.includes(route));
      await this.saveUndoFile();
      if (left.length > 0) throw leftoverError(left);
    });
  }

  /** Writes the routes still installed to `path` as JSON, mode 0600, replacing it atomically. */
  async writeUndoFile(path: string): Promise<void> {
    const content: UndoFileContent = { version: 1, routes: this.installed };
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
    // writeFile applies the mode only to a new file; a leftover temporary file keeps its own.
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  }

  /**
   * Removes the routes listed in an undo file (left by a process that was killed), newest first,
   * then deletes the file. Returns how many routes the file listed (those that had vanished
   * already included); a missing file means 0. Raises
   * 'CONFIG_INVALID' for a file that is not an undo file and 'ENV_COMMAND_FAILED' when a route
   * could not be removed (the file then keeps only those).
   */
  static async undoFromFile(run: IpRunner, path: string, log?: Logger): Promise<number> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    const routes = parseUndoFile(text, path);
    const manager = new RouteManager(run, log ?? createLogger({ level: 'silent', json: true }), { undoFile: path });
    manager.installed = routes;
    await manager.restore();
    return routes.length;
  }

  private async saveUndoFile(): Promise<void> {
    const path = this.options.undoFile;
    if (path === undefined) return;
    if (this.installed.length > 0) {
      await this.writeUndoFile(path);
      return;
    }
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  // One change at a time: a restore() that starts while apply() runs must see its routes.
  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

function toInstalledRoute(entry: RouteEntry, tunName: string): InstalledRoute {
  const destination = formatNetwork(entry.network);
  if (entry.via === 'tunnel') {
    assertInterfaceName(tunName);
    return { destination, dev: tunName };
  }
  assertInterfaceName(entry.dev);
  if (entry.gateway !== undefined && parseIp(entry.gateway) === undefined) {
    throw new AcvpnError('INTERNAL', `route ${destination} has an invalid gateway ${JSON.stringify(entry.gateway)}`);
  }
  return entry.gateway === undefined ? { destination, dev: entry.dev } : { destination, gateway: entry.gateway, dev: entry.dev };
}

function routeSpec(route: InstalledRoute): string[] {
  const via = route.gateway === undefined ? [] : ['via', route.gateway];
  return [route.destination, ...via, 'dev', route.dev];
}

function describeRoute(route: InstalledRoute): string {
  return routeSpec(route).join(' ');
}

interface BatchOutcome {
  /** False when ip failed without naming the failed lines (killed, crashed, not started). */
  known: boolean;
  /** ip's message for each failed line, by 0-based line index. */
  failures: Map<number, string>;
  error?: AcvpnError;
}

async function runBatch(run: IpRunner, lines: string[][]): Promise<BatchOutcome> {
  if (lines.length === 0) return { known: true, failures: new Map() };
  const input = `${lines.map((words) => words.join(' ')).join('\n')}\n`;
  try {
    await run(['-force', '-batch', '-'], { input });
    return { known: true, failures: new Map() };
  } catch (error) {
    if (!AcvpnError.is(error)) throw error;
    if (error.code !== 'ENV_COMMAND_FAILED') throw error;
    const failures = parseBatchFailures(ipStderr(error));
    return { known: failures.size > 0, failures, error };
  }
}

/**
 * Reads which lines of an `ip -force -batch` run failed. ip prints each failed command's error
 * message, then "Command failed -:N" with the 1-based line number (iproute2 6.1).
 */
export function parseBatchFailures(stderr: string): Map<number, string> {
  const failures = new Map<number, string>();
  let message: string[] = [];
  for (const line of stderr.split('\n')) {
    const match = /^Command failed -:(\d+)$/.exec(line.trim());
    if (match === null) {
      if (line.trim() !== '') message.push(line.trim());
      continue;
    }
    failures.set(Number(match[1]) - 1, message.join(' ') || 'no error message');
    message = [];
  }
  return failures;
}

/** Deletes `routes` in the given order; returns those that are still installed. */
async function deleteRoutes(run: IpRunner, log: Logger, routes: InstalledRoute[]): Promise<InstalledRoute[]> {
  const outcome = await runBatch(
    run,
    routes.map((route) => ['route', 'del', ...routeSpec(route)]),
  );
  if (!outcome.known) return deleteOneByOne(run, log, routes);

  const left: InstalledRoute[] = [];
  routes.forEach((route, index) => {
    const failure = outcome.failures.get(index);
    if (failure === undefined) {
      log.debug({ route: describeRoute(route) }, 'route removed');
    } else if (alreadyGonePattern.test(failure)) {
      log.debug({ route: describeRoute(route), reason: failure }, 'route was already gone');
    } else {
      log.warn({ route: describeRoute(route), reason: failure }, 'could not remove route');
      left.push(route);
    }
  });
  return left;
}

// The fallback when a batch ended without a per-line report: one ip process per route gives an
// exact result for each.
async function deleteOneByOne(run: IpRunner, log: Logger, routes: InstalledRoute[]): Promise<InstalledRoute[]> {
  const left: InstalledRoute[] = [];
  for (const route of routes) {
    try {
      await run(['route', 'del', ...routeSpec(route)]);
      log.debug({ route: describeRoute(route) }, 'route removed');
    } catch (error) {
      const reason = ipStderr(error);
      if (AcvpnError.is(error) && error.code === 'ENV_COMMAND_FAILED' && alreadyGonePattern.test(reason)) {
        log.debug({ route: describeRoute(route), reason }, 'route was already gone');
        continue;
      }
      log.warn({ route: describeRoute(route), err: error }, 'could not remove route');
      left.push(route);
    }
  }
  return left;
}

function applyError(lines: string[][], outcome: BatchOutcome): AcvpnError {
  if (!outcome.known) {
    return new AcvpnError(
      'ENV_COMMAND_FAILED',
      `installing ${lines.length} routes failed, and the routes that did go in were removed again: ${outcome.error?.message ?? 'unknown error'}`,
      {},
      { cause: outcome.error },
    );
  }
  const failed = [...outcome.failures].map(([index, message]) => `"${(lines[index] ?? []).join(' ')}": ${message}`);
  return new AcvpnError(
    'ENV_COMMAND_FAILED',
    `could not install ${failed.length} of ${lines.length} routes, so none were kept: ${failed.join('; ')}`,
    { failed },
    { cause: outcome.error },
  );
}

function leftoverError(left: InstalledRoute[]): AcvpnError {
  const routes = left.map(describeRoute);
  return new AcvpnError(
    'ENV_COMMAND_FAILED',
    `could not remove ${routes.length} routes (${routes.join('; ')}): check them with "ip route" and run the cleanup again`,
    { routes },
  );
}

function parseUndoFile(text: string, path: string): InstalledRoute[] {
  const invalid = (reason: string): AcvpnError =>
    new AcvpnError('CONFIG_INVALID', `the route undo file ${path} is invalid (${reason}): check "ip route" by hand, then delete the file`, {
      path,
    });

  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch {
    throw invalid('not JSON');
  }
  const { version, routes } = (content ?? {}) as Partial<UndoFileContent>;
  if (version !== 1) throw invalid(`unknown version ${JSON.stringify(version)}`);
  if (!Array.isArray(routes)) throw invalid('no list of routes');

  // The file decides what root deletes, so every field is checked before it reaches ip.
  return routes.map((item: unknown, index) => {
    const { destination, gateway, dev } = (item ?? {}) as Partial<InstalledRoute>;
    const family = typeof destination === 'string' && destination.includes(':') ? 6 : 4;
    const network = typeof destination === 'string' ? parseDestination(destination, family) : undefined;
    if (network === undefined || formatNetwork(network) !== destination) throw invalid(`route ${index + 1} has no valid destination`);
    if (gateway !== undefined && (typeof gateway !== 'string' || parseIp(gateway) === undefined)) {
      throw invalid(`route ${index + 1} has an invalid gateway`);
    }
    if (typeof dev !== 'string') throw invalid(`route ${index + 1} has no device`);
    try {
      assertInterfaceName(dev);
    } catch {
      throw invalid(`route ${index + 1} has an invalid device name`);
    }
    return gateway === undefined ? { destination, dev } : { destination, gateway, dev };
  });
}
