/**
 * Network namespaces, veth links, protected subnets and processes for end-to-end tests.
 *
 * Everything is created through a `Lab`, which records it and removes it again in
 * `destroy()` (call it from `afterAll`). Namespace names carry the creating process id
 * (`coati-h-<pid>-<rand>-<label>`), so a later `Lab.create()` reaps namespaces left
 * behind by a test process that died without cleaning up, and parallel test files
 * never collide. Needs root, iproute2 and nftables.
 */
import { type ChildProcess, execFile, spawn as spawnChild } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NS_PREFIX = 'coati-h-';

/** Every harness failure: says what failed and carries the relevant output. */
export class HarnessError extends Error {
  override readonly name = 'HarnessError';
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: Record<string, string>;
  input?: string;
  /** Return the result on a non-zero exit instead of throwing. */
  allowFail?: boolean;
}

export function randomId(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

/** Last `lines` lines of a text (for error messages). */
export function tail(text: string, lines = 40): string {
  const all = text.split('\n');
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  return all.slice(-lines).join('\n');
}

export function fileTail(path: string, lines = 40): string {
  try {
    return tail(readFileSync(path, 'utf8'), lines);
  } catch (err) {
    return `(cannot read ${path}: ${(err as Error).message})`;
  }
}

/** Runs a command (no shell). Throws a HarnessError with stderr on failure or timeout. */
export function run(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...args] = cmd;
  if (!file) throw new HarnessError('run: empty command');
  const timeout = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        timeout,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string; killed?: boolean }) | null;
        const res: ExecResult = {
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        };
        if (!e || opts.allowFail) {
          if (e && typeof e.code === 'string') {
            reject(new HarnessError(`cannot run ${cmd.join(' ')}: ${e.message}`));
            return;
          }
          resolve(res);
          return;
        }
        const why = e.killed ? `timed out after ${timeout} ms` : `failed (exit ${res.code ?? res.signal})`;
        reject(
          new HarnessError(
            `command ${why}: ${cmd.join(' ')}\n--- stderr ---\n${tail(stderr, 30)}\n--- stdout ---\n${tail(stdout, 30)}`,
          ),
        );
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** stdout and stderr are appended here; defaults to a file in the lab directory. */
  logFile?: string;
  cwd?: string;
}

/** A process started by the harness. */
export class Proc {
  readonly pid: number;
  private exitInfo: { code: number | null; signal: string | null } | undefined;
  private readonly exited: Promise<{ code: number | null; signal: string | null }>;

  constructor(
    readonly label: string,
    readonly cmd: string[],
    child: ChildProcess,
    readonly logFile: string,
  ) {
    if (child.pid === undefined) throw new HarnessError(`spawn ${label} failed: ${cmd.join(' ')}`);
    this.pid = child.pid;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.once('error', () => {
        this.exitInfo = { code: null, signal: 'spawn-error' };
        resolve(this.exitInfo);
      });
    });
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  get exit(): { code: number | null; signal: string | null } | undefined {
    return this.exitInfo;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // already gone
      }
    }
  }

  /** Waits for the process to exit; throws with the log tail on timeout. */
  async wait(timeoutMs = 10_000): Promise<{ code: number | null; signal: string | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new HarnessError(`${this.label} (pid ${this.pid}) did not exit within ${timeoutMs} ms\n${this.logTail()}`),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.kill('SIGTERM');
    try {
      await this.wait(graceMs);
    } catch {
      this.kill('SIGKILL');
      await this.wait(5000);
    }
  }

  logTail(lines = 40): string {
    return `--- ${this.label} log ${this.logFile} (last ${lines} lines) ---\n${fileTail(this.logFile, lines)}`;
  }
}

/** Processes still alive when the test process exits get SIGKILL (best effort). */
const livePids = new Set<number>();
let exitHookInstalled = false;
function trackPid(proc: Proc): void {
  livePids.add(proc.pid);
  proc.wait(2 ** 31 - 1).then(
    () => livePids.delete(proc.pid),
    () => {},
  );
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const pid of livePids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    });
  }
}

export class Netns {
  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly label: string,
  ) {}

  /** Runs a command inside the namespace. */
  exec(cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.name, ...cmd], opts).catch((err: Error) => {
      throw new HarnessError(`[netns ${this.label}] ${err.message}`);
    });
  }

  /** `ip -n <ns> ...args`; returns stdout. */
  async ip(...args: string[]): Promise<string> {
    return (await run(['ip', '-n', this.name, ...args])).stdout;
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec(['sysctl', '-qw', `${key}=${value}`]);
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    const args = ['addr', 'add', cidr, 'dev', dev];
    if (cidr.includes(':')) args.push('nodad');
    await this.ip(...args);
  }

  async addRoute(dest: string, opts: { via?: string; dev?: string; src?: string; table?: number | string } = {}) {
    const args = [dest.includes(':') ? '-6' : '-4', 'route', 'replace', dest];
    if (opts.via) args.push('via', opts.via);
    if (opts.dev) args.push('dev', opts.dev);
    if (opts.src) args.push('src', opts.src);
    if (opts.table !== undefined) args.push('table', String(opts.table));
    await this.ip(...args);
  }

  /** Enables IPv4/IPv6 forwarding and disables reverse path filtering. */
  async enableForwarding(): Promise<void> {
    await this.sysctl('net.ipv4.ip_forward', 1);
    await this.sysctl('net.ipv6.conf.all.forwarding', 1);
    await this.sysctl('net.ipv4.conf.all.rp_filter', 0);
    await this.sysctl('net.ipv4.conf.default.rp_filter', 0);
  }

  /** Starts a long-running process inside the namespace; output goes to `logFile`. */
  spawn(cmd: string[], opts: SpawnOptions = {}): Proc {
    return this.lab.spawnRaw(['ip', 'netns', 'exec', this.name, ...cmd], {
      ...opts,
      label: `${this.label}:${(cmd[0] ?? '').split('/').pop()}`,
    });
  }

  /** Process ids currently inside the namespace. */
  async pids(): Promise<number[]> {
    const r = await run(['ip', 'netns', 'pids', this.name], { allowFail: true });
    return r.stdout
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((n) => Number.isInteger(n));
  }

  async destroy(): Promise<void> {
    for (const pid of await this.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await run(['ip', 'netns', 'del', this.name], { allowFail: true });
  }
}

export interface LinkSpec {
  /** Interface names (max 15 chars); default `to-<peer label>`. */
  aName?: string;
  bName?: string;
  /** Addresses with prefix length, IPv4 and/or IPv6 (`198.51.100.1/24`, `fd00::1/64`). */
  a?: string[];
  b?: string[];
  mtu?: number;
}

export interface Link {
  a: Netns;
  b: Netns;
  aIf: string;
  bIf: string;
}

export interface ProtectedSubnet {
  /** The one-host namespace that stands for the subnet behind `gateway`. */
  host: Netns;
  gateway: Netns;
  /** Address of the host inside the subnet (no prefix length). */
  hostAddr: string;
  hostAddr6?: string;
  /** Gateway's address inside the subnet (no prefix length). */
  gatewayAddr: string;
  gatewayAddr6?: string;
  /** Interface of the gateway facing the subnet. */
  gatewayIf: string;
}

const addrOf = (cidr: string) => cidr.split('/')[0] ?? cidr;

/** Owner of every namespace, process and file of one test file. */
export class Lab {
  readonly namespaces: Netns[] = [];
  readonly procs: Proc[] = [];
  private readonly cleanups: (() => Promise<void> | void)[] = [];
  private destroyed = false;

  private constructor(
    readonly id: string,
    readonly dir: string,
  ) {}

  /** Creates a lab (and reaps namespaces of dead test processes first). */
  static async create(opts: { label?: string } = {}): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new HarnessError('test harness needs root (ip netns, nft, mount)');
    await reapStale();
    const id = `${process.pid}-${randomId()}`;
    const dir = mkdtempSync(join(tmpdir(), `${NS_PREFIX}${process.pid}-${opts.label ?? 'lab'}-`));
    return new Lab(id, dir);
  }

  /** A fresh directory inside the lab directory. */
  subdir(name: string): string {
    const p = join(this.dir, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  /** Registers a cleanup action, run (in reverse order) by `destroy()`. */
  onDestroy(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  async netns(label: string): Promise<Netns> {
    const name = `${NS_PREFIX}${this.id}-${label}`;
    await run(['ip', 'netns', 'add', name]);
    const ns = new Netns(this, name, label);
    this.namespaces.push(ns);
    await ns.ip('link', 'set', 'lo', 'up');
    // No duplicate address detection on the link-local addresses of new links either:
    // it delays the first IPv6 neighbour exchange by about a second.
    await ns.sysctl('net.ipv6.conf.default.accept_dad', 0);
    await ns.sysctl('net.ipv6.conf.all.accept_dad', 0);
    return ns;
  }

  /** A veth pair between two namespaces, addressed and up. */
  async link(a: Netns, b: Netns, spec: LinkSpec = {}): Promise<Link> {
    const aIf = spec.aName ?? `to-${b.label}`.slice(0, 15);
    const bIf = spec.bName ?? `to-${a.label}`.slice(0, 15);
    const tmp = `vh${randomId(4)}`;
    // Create in namespace a, with the peer end moved straight into b: no host-side names.
    await a.ip('link', 'add', aIf, 'type', 'veth', 'peer', 'name', tmp, 'netns', b.name);
    await b.ip('link', 'set', tmp, 'name', bIf);
    for (const [ns, dev, addrs] of [
      [a, aIf, spec.a ?? []],
      [b, bIf, spec.b ?? []],
    ] as const) {
      if (spec.mtu) await ns.ip('link', 'set', dev, 'mtu', String(spec.mtu));
      for (const cidr of addrs) await ns.addAddress(dev, cidr);
      await ns.ip('link', 'set', dev, 'up');
    }
    return { a, b, aIf, bIf };
  }

  /**
   * A "protected subnet" behind `gateway`: a one-host namespace on a second veth, with a
   * default route via the gateway, which forwards. Tunnel traffic between two such hosts
   * is routed by charon's (or coati's) routes on the gateways.
   */
  async protectedSubnet(
    gateway: Netns,
    spec: { gateway: string; host: string; gateway6?: string; host6?: string; label?: string },
  ): Promise<ProtectedSubnet> {
    const host = await this.netns(spec.label ?? `${gateway.label}-lan`);
    const link = await this.link(gateway, host, {
      aName: 'lan0',
      bName: 'eth0',
      a: [spec.gateway, ...(spec.gateway6 ? [spec.gateway6] : [])],
      b: [spec.host, ...(spec.host6 ? [spec.host6] : [])],
    });
    await gateway.enableForwarding();
    await host.addRoute('default', { via: addrOf(spec.gateway) });
    if (spec.gateway6) await host.ip('-6', 'route', 'replace', 'default', 'via', addrOf(spec.gateway6));
    return {
      host,
      gateway,
      hostAddr: addrOf(spec.host),
      gatewayAddr: addrOf(spec.gateway),
      gatewayIf: link.aIf,
      ...(spec.host6 ? { hostAddr6: addrOf(spec.host6) } : {}),
      ...(spec.gateway6 ? { gatewayAddr6: addrOf(spec.gateway6) } : {}),
    };
  }

  /** Spawns a command (already wrapped for its namespace). Used by Netns.spawn. */
  spawnRaw(cmd: string[], opts: SpawnOptions & { label: string }): Proc {
    if (this.destroyed) throw new HarnessError(`lab ${this.id} is destroyed; cannot spawn ${opts.label}`);
    const logFile = opts.logFile ?? join(this.dir, `${opts.label.replace(/[^\w.-]/g, '_')}-${randomId(2)}.log`);
    const fd = openSync(logFile, 'a');
    try {
      const [file, ...args] = cmd;
      const child = spawnChild(file!, args, {
        stdio: ['ignore', fd, fd],
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        cwd: opts.cwd,
      });
      const proc = new Proc(opts.label, cmd, child, logFile);
      this.procs.push(proc);
      trackPid(proc);
      return proc;
    } finally {
      closeSync(fd);
    }
  }

  /** Kills every process, deletes every namespace, and removes the lab directory. */
  async destroy(opts: { keepDir?: boolean } = {}): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const errors: string[] = [];
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    for (const p of this.procs) p.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.wait(5000).catch((e: Error) => errors.push(e.message))));
    for (const ns of this.namespaces.reverse()) await ns.destroy();
    const keep = opts.keepDir ?? process.env.COATI_KEEP_LOGS === '1';
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
    if (errors.length > 0) throw new HarnessError(`lab cleanup had errors:\n${errors.join('\n')}`);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes `coati-h-<pid>-...` namespaces whose creating process is gone. */
export async function reapStale(): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { allowFail: true });
  const reaped: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const pids = await run(['ip', 'netns', 'pids', name], { allowFail: true });
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
    await run(['ip', 'netns', 'del', name], { allowFail: true });
    reaped.push(name);
  }
  // Lab directories of dead test processes (kept only with COATI_KEEP_LOGS=1).
  if (process.env.COATI_KEEP_LOGS !== '1') {
    for (const entry of readdirSync(tmpdir())) {
      const m = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(entry);
      if (m && !pidAlive(Number(m[1]))) rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    }
  }
  return reaped;
}

/** Polls `fn` until it returns a value other than undefined/false; throws `what` + `context()` on timeout. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number; context?: () => string } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const end = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > end) {
      const why = lastErr ? `\nlast error: ${(lastErr as Error).message}` : '';
      throw new HarnessError(`timed out after ${timeoutMs} ms waiting for ${what}${why}\n${opts.context?.() ?? ''}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
