/**
 * Failure scenarios with real coatid processes (the postmortem's "Liveness and
 * recovery" cases): a DaemonMesh (test/helpers/daemon.ts: namespaces on one
 * bridge, generated PSK configs, memory kernel backend) whose daemons log JSON
 * at debug level, plus what the scenarios measure:
 *
 *  - when a (re)started daemon's admin socket answers (`ctlUp`),
 *  - when a relationship is consistent on both ends (`pairState`/`waitPair`:
 *    `coatictl status --json` on both, the same IKE SPIs with complementary
 *    roles, exactly one installed Child SA each, SPIs crosswise),
 *  - how many IKE SAs each daemon really holds per peer (`liveIkeSas`).
 *    `status` shows one IKE SA per peer, so a duplicate could hide behind it;
 *    the daemon's own state-transition log lines (`IKE SA a -> b`, one per
 *    transition, with the full SPIs) cannot.
 *    Only the lines written since the current process started count.
 */
import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import type { PeerStatus, StatusReport } from '../../src/control/types.js';
import { type Lab, sleep, waitFor } from '../harness/netns.js';
import { DaemonMesh, type DaemonNode, type MeshOptions } from './daemon.js';

export interface ScenarioOptions extends MeshOptions {
  /** Extra lines for the `[daemon]` section of one node (e.g. `shutdown = "delete"`). */
  daemonExtra?: (n: DaemonNode) => string;
  /** Log level (default debug). */
  logLevel?: 'debug' | 'info';
  /** A last edit of every node's main config text (e.g. another start-up cap). */
  mainEdit?: (text: string) => string;
}

export interface LogLine {
  ts: string;
  level: string;
  msg: string;
  subsystem?: string;
  peer?: string;
  sa?: string;
  [k: string]: unknown;
}

export interface PairState {
  ikeSpiI: string;
  ikeSpiR: string;
  /** node a's inbound/outbound Child SPIs (node b has them swapped). */
  childIn: string;
  childOut: string;
}

const LIVE_IKE = new Set(['established', 'rekeying']);
const PENDING_IKE = new Set(['created', 'connecting', 'authenticating']);
const isAddrPort = (s: string) => /^[\d.:a-f[\]]+:\d+$/i.test(s);

export class MeshProcs {
  private readonly logOffset = new Map<DaemonNode, number>();
  readonly startedAt = new Map<DaemonNode, number>();

  private constructor(
    readonly mesh: DaemonMesh,
    private readonly opts: ScenarioOptions,
  ) {}

  static async create(lab: Lab, opts: ScenarioOptions): Promise<MeshProcs> {
    const mesh = await DaemonMesh.create(lab, opts);
    const m = new MeshProcs(mesh, opts);
    for (const n of mesh.nodes) m.rewriteMain(n);
    return m;
  }

  get nodes(): DaemonNode[] {
    return this.mesh.nodes;
  }

  node(name: string): DaemonNode {
    return this.mesh.node(name);
  }

  /** The generated main config with JSON logs at the chosen level and the node's [daemon] extras. */
  rewriteMain(n: DaemonNode): void {
    const text = this.mesh
      .mainConfig(n)
      .replace('[log]\ndefault = "info"', `[log]\ndefault = "${this.opts.logLevel ?? 'debug'}"\nformat = "json"`)
      .replace(/^\[daemon\]\n/m, `[daemon]\n${this.opts.daemonExtra?.(n) ?? ''}`);
    writeFileSync(n.conf, this.opts.mainEdit ? this.opts.mainEdit(text) : text);
  }

  logFile(n: DaemonNode): string {
    return `${n.dir}/coatid.log`;
  }

  /** Starts (or restarts) a node's daemon; remembers where its log starts. */
  start(n: DaemonNode): number {
    let size = 0;
    try {
      size = statSync(this.logFile(n)).size;
    } catch {
      // first start
    }
    this.logOffset.set(n, size);
    const t = Date.now();
    this.startedAt.set(n, t);
    this.mesh.start(n);
    return t;
  }

  startAll(nodes = this.nodes): number {
    const t = Date.now();
    for (const n of nodes) this.start(n);
    return t;
  }

  /** SIGKILL (or another signal) and wait for the exit. */
  async kill(n: DaemonNode, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 10_000): Promise<void> {
    const p = n.proc;
    if (!p) return;
    p.kill(signal);
    await p.wait(timeoutMs);
  }

  async status(n: DaemonNode): Promise<StatusReport | undefined> {
    return this.mesh.status(n);
  }

  /** Waits until the daemon started last answers on its admin socket; returns that moment (epoch ms). */
  async ctlUp(n: DaemonNode, timeoutMs = 15_000): Promise<number> {
    const pid = n.proc?.pid;
    return waitFor(
      `${n.name}'s admin socket`,
      async () => {
        const st = await this.status(n);
        return st && (pid === undefined || st.pid === pid) ? Date.now() : undefined;
      },
      { timeoutMs, intervalMs: 10, context: () => this.mesh.logs() },
    );
  }

  /** The relationship a<->b if it is consistent right now, else a reason why not. */
  async pairState(a: DaemonNode, b: DaemonNode): Promise<PairState | string> {
    const [sa, sb] = await Promise.all([this.status(a), this.status(b)]);
    const pa = sa?.peers.find((p) => p.name === b.name);
    const pb = sb?.peers.find((p) => p.name === a.name);
    return consistentPair(pa, pb);
  }

  /** Polls until a<->b is consistent; returns the state and when it was seen (epoch ms). */
  async waitPair(a: DaemonNode, b: DaemonNode, timeoutMs = 20_000): Promise<PairState & { at: number }> {
    let last = '';
    return waitFor(
      `${a.name} <-> ${b.name} up and consistent`,
      async () => {
        const s = await this.pairState(a, b);
        if (typeof s === 'string') {
          last = s;
          return undefined;
        }
        return { ...s, at: Date.now() };
      },
      { timeoutMs, intervalMs: 10, context: () => `last: ${last}\n${this.mesh.logs(40)}` },
    );
  }

  /** Every pair of `nodes` consistent (status taken once per node per round); returns when (epoch ms). */
  async waitAllPairs(nodes = this.nodes, timeoutMs = 30_000, intervalMs = 200): Promise<number> {
    let bad: string[] = [];
    return waitFor(
      `all ${(nodes.length * (nodes.length - 1)) / 2} pairs consistent`,
      async () => {
        const reports = await Promise.all(nodes.map((n) => this.status(n)));
        bad = [];
        for (let i = 0; i < nodes.length; i++)
          for (let j = i + 1; j < nodes.length; j++) {
            const a = nodes[i] as DaemonNode;
            const b = nodes[j] as DaemonNode;
            const r = consistentPair(
              reports[i]?.peers.find((p) => p.name === b.name),
              reports[j]?.peers.find((p) => p.name === a.name),
            );
            if (typeof r === 'string') bad.push(`${a.name}<->${b.name}: ${r}`);
          }
        return bad.length === 0 ? Date.now() : undefined;
      },
      {
        timeoutMs,
        intervalMs,
        context: () => `${bad.length} pairs not consistent:\n${bad.slice(0, 20).join('\n')}\n${this.mesh.logs(10)}`,
      },
    );
  }

  /** JSON log lines written by the current process of `n` (non-JSON lines skipped). */
  logLines(n: DaemonNode): LogLine[] {
    return readLogLines(this.logFile(n), this.logOffset.get(n) ?? 0);
  }

  /**
   * IKE SAs per peer name that the current process of `n` holds, from its `IKE SA a -> b`
   * transition lines: `live` (established or rekeying) and `pending` (still negotiating).
   * (Child SAs are not counted here: an IKE SA's teardown removes its Child SAs without a
   * `child.state` event, so the log cannot tell when they went; `consistentPair` checks
   * them through status.)
   */
  ikeSas(n: DaemonNode): Map<string, { live: Set<string>; pending: Set<string> }> {
    const ike = new Map<string, { peer: string; state: string }>();
    for (const l of this.logLines(n)) {
      const m = /^IKE SA (\w+) -> (\w+)$/.exec(l.msg);
      if (!m || typeof l.sa !== 'string') continue;
      // spiI identifies the SA (spiR is zero until the first answer).
      const id = l.sa.split('/')[0] ?? l.sa;
      const prev = ike.get(id);
      const peer = typeof l.peer === 'string' && !isAddrPort(l.peer) ? l.peer : (prev?.peer ?? String(l.peer));
      ike.set(id, { peer, state: m[2] as string });
    }
    const g = new Map<string, { live: Set<string>; pending: Set<string> }>();
    for (const [id, v] of ike) {
      const live = LIVE_IKE.has(v.state);
      if (!live && !PENDING_IKE.has(v.state)) continue;
      const e = g.get(v.peer) ?? { live: new Set<string>(), pending: new Set<string>() };
      (live ? e.live : e.pending).add(id);
      g.set(v.peer, e);
    }
    return g;
  }

  /**
   * "node:peer ike=N" for every daemon of `nodes` that holds other than exactly one live
   * IKE SA with another (with `pending`, also one still negotiating).
   */
  duplicates(nodes = this.nodes, opts: { pending?: boolean } = {}): string[] {
    const bad: string[] = [];
    for (const n of nodes) {
      const sas = this.ikeSas(n);
      for (const p of nodes) {
        if (p === n) continue;
        const e = sas.get(p.name);
        const live = e?.live.size ?? 0;
        const pending = opts.pending ? (e?.pending.size ?? 0) : 0;
        if (live !== 1 || pending > 0)
          bad.push(`${n.name}:${p.name} ike=${live} [${[...(e?.live ?? [])].join(',')}] pending=${pending}`);
      }
    }
    return bad;
  }

  /**
   * Waits until every pair is consistent, no daemon holds a second IKE SA with anyone
   * or is still negotiating one, and that has held for `quietMs` (longer than the
   * engine's grace before it deletes a crossing-streams duplicate, 1.5-2.5 s).
   * Returns when the settled state began (epoch ms).
   */
  async waitSettled(nodes = this.nodes, timeoutMs = 20_000, quietMs = 3000, intervalMs = 100): Promise<number> {
    let since: number | undefined;
    let why = '';
    let lastBad = '';
    return waitFor(
      `one IKE SA per pair on every daemon, stable for ${quietMs} ms`,
      async () => {
        const dups = this.duplicates(nodes, { pending: true });
        let ok = dups.length === 0;
        why = dups.join(' ');
        if (ok) {
          try {
            await this.waitAllPairs(nodes, 0, 50);
          } catch (err) {
            ok = false;
            why = (err as Error).message.split('\n').slice(0, 4).join(' ');
          }
        }
        if (!ok) {
          lastBad = `${why} (${new Date().toISOString()})`;
          since = undefined;
          return undefined;
        }
        since ??= Date.now();
        return Date.now() - since >= quietMs ? since : undefined;
      },
      {
        timeoutMs,
        intervalMs,
        // When the last poll happened to be fine, what was wrong before it (the reason is otherwise lost).
        context: () =>
          `not settled: ${since === undefined ? why : `settled for only ${Date.now() - since} ms; before: ${lastBad}`}\n${this.mesh.logs(60)}`,
      },
    );
  }

  /**
   * When traffic can flow again between a and b: the earliest moment (epoch ms, from the
   * daemons' own log timestamps) at which both have installed a Child SA of one pair,
   * a's inbound SPI = b's outbound SPI and the reverse, not before `after`. With the
   * memory kernel backend this stands in for "ESP flows"; it does not wait for a
   * crossing-streams duplicate to be cleaned up (either pair carries traffic).
   */
  childFlowAt(a: DaemonNode, b: DaemonNode, after = 0): number | undefined {
    return childFlowAt(this.logLines(a), b.name, this.logLines(b), a.name, after);
  }

  async waitFlow(a: DaemonNode, b: DaemonNode, after: number, timeoutMs = 20_000): Promise<number> {
    return waitFor(`a Child SA pair installed on ${a.name} and ${b.name}`, () => this.childFlowAt(a, b, after), {
      timeoutMs,
      intervalMs: 20,
      context: () => this.mesh.logs(30),
    });
  }

  /** First log line of the current process of `n` matching, with its time (epoch ms). */
  firstLine(n: DaemonNode, pred: (l: LogLine) => boolean, after = 0): (LogLine & { at: number }) | undefined {
    for (const l of this.logLines(n)) {
      const at = Date.parse(l.ts);
      if (at >= after && pred(l)) return { ...l, at };
    }
    return undefined;
  }

  /** VmRSS in KiB and CPU ticks (utime+stime) of the process behind `n`. */
  procStats(n: DaemonNode): { rssKb: number; cpuTicks: number } {
    const pid = n.proc?.pid;
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? Number.NaN);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rssKb: rss, cpuTicks: Number(f[11]) + Number(f[12]) };
  }

  logs(lines = 30): string {
    return this.mesh.logs(lines);
  }
}

/** undefined-safe consistency check of both ends of one relationship. */
export function consistentPair(a: PeerStatus | undefined, b: PeerStatus | undefined): PairState | string {
  if (!a || !b) return `no status (${a ? '' : 'a'}${b ? '' : 'b'})`;
  if (a.state !== 'up' || b.state !== 'up') return `states ${a.state}/${b.state}`;
  if (!a.ike || !b.ike) return 'no IKE SA';
  if (a.ike.spiI !== b.ike.spiI || a.ike.spiR !== b.ike.spiR)
    return `IKE SPIs differ ${a.ike.spiI}/${a.ike.spiR} vs ${b.ike.spiI}/${b.ike.spiR}`;
  if (a.ike.role === b.ike.role) return `both ${a.ike.role}`;
  const ca = a.children.filter((c) => c.state === 'installed');
  const cb = b.children.filter((c) => c.state === 'installed');
  if (ca.length !== 1 || cb.length !== 1) return `installed children ${ca.length}/${cb.length}`;
  const x = ca[0] as (typeof ca)[number];
  const y = cb[0] as (typeof cb)[number];
  if (x.spiIn !== y.spiOut || x.spiOut !== y.spiIn)
    return `child SPIs not crosswise ${x.spiIn}/${x.spiOut} vs ${y.spiIn}/${y.spiOut}`;
  return { ikeSpiI: a.ike.spiI, ikeSpiR: a.ike.spiR, childIn: x.spiIn, childOut: x.spiOut };
}

/** Polls `fn` every `everyMs` until `until` (epoch ms), collecting samples. */
export async function sampleUntil<T>(until: number, everyMs: number, fn: () => T | Promise<T>): Promise<T[]> {
  const out: T[] = [];
  while (Date.now() < until) {
    out.push(await fn());
    await sleep(everyMs);
  }
  return out;
}

/** Scenario figures: printed as test output and collected for a results file. */
export function report(label: string, figures: Record<string, number | string>): void {
  const body = Object.entries(figures)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v) : v}`)
    .join(' ');
  process.stdout.write(`[scenario] ${label}: ${body}\n`);
}

/** JSON lines of a coatid log (`[log] format = "json"`) from byte `from` on; other lines skipped. */
export function readLogLines(file: string, from = 0): LogLine[] {
  let text: string;
  try {
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.max(0, size - from));
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, from);
    } finally {
      closeSync(fd);
    }
    text = buf.toString('utf8');
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // a partial last line
    }
  }
  return out;
}

/**
 * The earliest moment (epoch ms, from the daemons' log timestamps, not before `after`) at
 * which daemon A (log `aLines`, its peer entry for B named `bName`) and daemon B have both
 * installed a Child SA of one pair: A's inbound SPI = B's outbound SPI and the reverse.
 */
export function childFlowAt(
  aLines: LogLine[],
  bName: string,
  bLines: LogLine[],
  aName: string,
  after = 0,
): number | undefined {
  const installs = (lines: LogLine[], peer: string) => {
    const out = new Map<string, number>();
    for (const l of lines) {
      if (l.peer !== peer || typeof l.sa !== 'string' || !/^Child SA \S+ \w+ -> installed$/.test(l.msg)) continue;
      const at = Date.parse(l.ts);
      if (at >= after && !out.has(l.sa)) out.set(l.sa, at);
    }
    return out;
  };
  const ia = installs(aLines, bName);
  const ib = installs(bLines, aName);
  let best: number | undefined;
  for (const [sa, at] of ia) {
    const [inb, outb] = sa.split('/');
    const bt = ib.get(`${outb}/${inb}`);
    if (bt === undefined) continue;
    const t = Math.max(at, bt);
    if (best === undefined || t < best) best = t;
  }
  return best;
}
