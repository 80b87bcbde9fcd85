/**
 * The machinery of the handshake benches (bench/handshake.ts for IKEv2,
 * bench/handshake-v1.ts for IKEv1): arguments, namespaces, coati peer processes
 * and their IPC, charon daemons, the three scenarios, CPU/memory sampling,
 * medians, the report and the JSON results. A bench supplies a `BenchSpec`:
 * its charon config, its peer process, how charon's completion is observed,
 * its crypto-only ceiling and its labels.
 *
 * Scenarios (each K handshakes, PSK, tunnel mode, all initiated at once, from
 * namespace A (198.51.100.1) to namespace B (198.51.100.2) over a veth):
 *   coati   coati -> coati: two forked peer processes, MemoryKernel.
 *   charon  charon -> charon: kernel-libipsec (userspace ESP, so Child SAs install on a
 *           kernel without ESP), half-open/cookie limits raised, IKE SA table sized.
 *   mixed   coati -> charon: coati initiator process, charon responder as above.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { daemonV8Flags } from '../src/util/v8-flags.js';
import { Charon, type CharonOptions } from '../test/harness/charon.js';
import { Lab, type Netns, run } from '../test/harness/netns.js';
import type { ConnSpec } from '../test/harness/swanctl-conf.js';
import {
  type MemSample,
  type PeerCool,
  type PeerDone,
  type PeerSetup,
  type PeerWarm,
  tsHost,
} from './handshake-common.js';
import { ViciClient } from './vici.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ADDR_A = '198.51.100.1';
export const ADDR_B = '198.51.100.2';
// Protected subnets behind A and B. Host-to-host tunnel selectors on the IKE
// addresses themselves are refused by charon (route "conflicts with IKE traffic").
export const NET_A = '10.1';
export const NET_B = '10.2';
export const PSK = 'bench-psk-0123456789abcdef0123456789';
const CLK_TCK = 100;

// ---- arguments ------------------------------------------------------------------

export interface HandshakeBenchOptions {
  ks: number[];
  /**
   * Warm-up handshakes before the measured K, in the same daemons (0: the K are the
   * daemons' first handshakes: cold, a fleet start-up; > 0: a running daemon). Each
   * value is a separate set of runs.
   */
  warmups: number[];
  /**
   * Peers configured on both sides beyond the measured K and the warm-up's, never
   * initiated (a mesh host configures every other host, whether or not it is
   * negotiating with it at the moment). Each value is a separate set of runs.
   */
  idles: number[];
  seconds: number;
  runs: number;
  scenarios: Scenario[];
  deadlineS: number;
  profileDir?: string;
  out?: string;
}

export type Scenario = 'coati' | 'charon' | 'mixed';

export function parseArgs(
  argv: string[],
  defaults: { ks: number[]; warmups?: number[]; idles?: number[] } = { ks: [100, 500] },
): HandshakeBenchOptions {
  const o: HandshakeBenchOptions = {
    ks: defaults.ks,
    warmups: defaults.warmups ?? [0],
    idles: defaults.idles ?? [0],
    seconds: 3,
    runs: 1,
    scenarios: ['coati', 'charon', 'mixed'],
    deadlineS: 60,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1] ?? '';
    if (a === '--k') o.ks = v.split(',').map(Number);
    else if (a === '--warmup') o.warmups = v.split(',').map(Number);
    else if (a === '--idle') o.idles = v.split(',').map(Number);
    else if (a === '--seconds') o.seconds = Number(v);
    else if (a === '--runs') o.runs = Number(v);
    else if (a === '--scenarios') o.scenarios = v.split(',') as Scenario[];
    else if (a === '--deadline') o.deadlineS = Number(v);
    else if (a === '--profile') o.profileDir = resolve(v);
    else if (a === '--out') o.out = v;
    else throw new Error(`unknown argument ${a}`);
    i++;
  }
  if (o.ks.some((k) => !Number.isInteger(k) || k < 1)) throw new Error('--k wants positive integers');
  if (o.warmups.some((w) => !Number.isInteger(w) || w < 0)) throw new Error('--warmup wants integers >= 0');
  if (o.idles.some((n) => !Number.isInteger(n) || n < 0)) throw new Error('--idle wants integers >= 0');
  if (Math.max(...o.ks) + Math.max(...o.warmups) + Math.max(...o.idles) > 65_536)
    throw new Error('--k plus --warmup plus --idle: at most 65536 peers (one /16 of tunnel selectors per side)');
  return o;
}

// ---- what a bench supplies ------------------------------------------------------

/** How a bench learns that one charon has completed its K handshakes. */
export interface CharonWatch {
  /** Resolves true once `k` handshakes are complete on this charon, false at `deadline` (performance.now()). */
  waitUp(k: number, deadline: number): Promise<boolean>;
  /** Handshakes complete on this charon now. */
  established(): Promise<number>;
  /** State for the note of an incomplete run. */
  describe(): Promise<string>;
  close(): void;
}

export interface Ceiling {
  /** Handshakes per second (both peers' crypto, one core). */
  perSecond: number;
  rounds: number[];
}

export interface BenchSpec<C extends Ceiling> {
  /** `IKEv2` (console header). */
  version: string;
  /** `handshake`: error messages and the results file name. */
  name: string;
  labLabel: string;
  /** Compiled peer process next to this file (`handshake-peer.js`). */
  peerScript: string;
  /** Namespace name prefix per scenario (unique per bench). */
  nsTags: Record<Scenario, string>;
  /** Prefix of the peer process labels (CPU profile names) and of the charon names. */
  forkPrefix: string;
  charonPrefix: string;
  /** The charon connection beyond addresses, identities, PSK and selectors. */
  conn: Pick<ConnSpec, 'version' | 'proposals' | 'mobike'>;
  esp: string[];
  suite: string;
  watch(c: Charon, vici: ViciClient): Promise<CharonWatch>;
  /**
   * Wall time of the mixed scenario: the coati initiator's own figure (when the
   * charon responder is complete before the initiator), or until both are.
   */
  mixedWall: 'initiator' | 'both';
  /** Report whether the targets (coati/charon >= 1, coati/ceiling >= 0.5) are met. */
  targets: boolean;
  /** Appended to the initiator/responder ratios in the report. */
  sideRatioNote: string;
  ceiling(seconds: number): C;
  /** Console line once the ceiling is measured, and the report's first line. */
  ceilingStart(c: C): string;
  ceilingLine(c: C): string;
}

// ---- results --------------------------------------------------------------------

export interface SideFigures {
  impl: 'coati' | 'charon';
  role: 'initiator' | 'responder';
  cpuS: number;
  /** RSS after minus before (after a forced GC for coati), bytes. */
  rssDelta: number;
  /** coati only: V8 heap + external (ArrayBuffers) growth, bytes. */
  heapDelta?: number;
  established: number;
  retransmits?: number;
}

export interface RunResult extends Variant {
  scenario: Scenario;
  k: number;
  run: number;
  ok: boolean;
  note?: string;
  wallS: number;
  sides: SideFigures[];
  /** UDP receive-buffer drops (kernel RcvbufErrors) in each namespace during the run. */
  udpRcvbufErrors: { initiator: number; responder: number };
  childSasInstalled?: number;
  /** K / wall seconds. */
  perSecondWall: number;
  /** K / CPU seconds of both daemons together. */
  perCpuSecond: number;
}

// ---- helpers ----------------------------------------------------------------------

/**
 * Namespaces A and B on a veth. Each also gets its K protected host addresses on
 * `lo`: charon's kernel-libipsec installs a route per Child SA whose source must
 * be a local address inside the local traffic selector (else TS_UNACCEPTABLE).
 */
export async function pair(lab: Lab, tag: string, k: number): Promise<{ a: Netns; b: Netns }> {
  const a = await lab.netns(`${tag}a`);
  const b = await lab.netns(`${tag}b`);
  await lab.link(a, b, { aName: 'wan0', bName: 'wan0', a: [`${ADDR_A}/24`], b: [`${ADDR_B}/24`] });
  for (const [ns, net] of [
    [a, NET_A],
    [b, NET_B],
  ] as const) {
    const cmds = Array.from({ length: k }, (_, i) => `addr add ${tsHost(net, i)} dev lo`).join('\n');
    await run(['ip', '-n', ns.name, '-batch', '-'], { input: `${cmds}\n` });
  }
  return { a, b };
}

export async function udpRcvbufErrors(ns: Netns): Promise<number> {
  const r = await ns.exec(['cat', '/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const head = lines[0]?.split(/\s+/) ?? [];
  const vals = lines[1]?.split(/\s+/) ?? [];
  return Number(vals[head.indexOf('RcvbufErrors')] ?? 0);
}

/** RcvbufErrors of both namespaces, [A, B]. */
const drops = async (a: Netns, b: Netns) => [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];

const dropsDelta = (d0: number[], d1: number[]) => ({
  initiator: (d1[0] ?? 0) - (d0[0] ?? 0),
  responder: (d1[1] ?? 0) - (d0[1] ?? 0),
});

export function procCpuS(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the comm: state(3) ... utime(14) stime(15) -> indices 11, 12 here.
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

export function procRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

export function waitMsg<T>(child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve_, reject) => {
    const t = setTimeout(() => {
      child.off('message', on);
      reject(new Error(`peer process: no '${type}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (m: { type: string }) => {
      if (m.type !== type) return;
      clearTimeout(t);
      child.off('message', on);
      resolve_(m as T);
    };
    child.on('message', on);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`peer process exited (${code}) while waiting for '${type}'`));
    });
  });
}

/** Sends `type` to each peer and waits for each one's answer of type `answer` (in the peers' order). */
function ask<T, P extends ChildProcess[] = [ChildProcess, ChildProcess]>(
  peers: [...P],
  type: string,
  answer: string,
  timeoutMs: number,
): Promise<{ [I in keyof P]: T }> {
  const ps = peers.map((p) => waitMsg<T>(p, answer, timeoutMs));
  for (const p of peers) p.send({ type });
  return Promise.all(ps) as Promise<{ [I in keyof P]: T }>;
}

/** Extra node arguments for the coati peer processes (V8 experiments), from `COATI_BENCH_NODE_ARGS`. */
const benchNodeArgs = (): string[] => process.env.COATI_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

function forkPeer(script: string, opts: HandshakeBenchOptions, label: string): ChildProcess {
  const execArgv = ['--expose-gc', ...benchNodeArgs()];
  if (opts.profileDir)
    execArgv.push(
      '--cpu-prof',
      '--cpu-prof-interval',
      '100',
      '--cpu-prof-dir',
      opts.profileDir,
      '--cpu-prof-name',
      `${label}.cpuprofile`,
    );
  return fork(join(HERE, script), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

export async function stopPeer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.send({ type: 'exit' });
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

export const CHARON_OPTS: CharonOptions = {
  // Silence: coati logs nothing in the bench either.
  logLevels: { default: -1, ike: -1, knl: -1, cfg: -1, net: -1, enc: -1, job: -1, mgr: -1, lib: -1 },
  settings: {
    // Half-open / DoS limits that throttle a start-up herd from one address (see
    // shared/notes/crypto-performance.md), raised as for a mesh hub.
    cookie_threshold: 1_000_000,
    cookie_threshold_ip: 1_000_000,
    block_threshold: 1_000_000,
    init_limit_half_open: 0,
    init_limit_job_load: 0,
    // The default IKE SA table is one bucket (a list): size it for K SAs.
    ikesa_table_size: 4096,
    ikesa_table_segments: 16,
  },
};

/** Connections of SAs 0 .. n-1 (the measured K, then the warm-up's, then the idle peers). */
function charonConns(spec: BenchSpec<Ceiling>, role: 'initiator' | 'responder', k: number): ConnSpec[] {
  const out: ConnSpec[] = [];
  const ini = role === 'initiator';
  const [local, remote] = ini ? [ADDR_A, ADDR_B] : [ADDR_B, ADDR_A];
  const [localNet, remoteNet] = ini ? [NET_A, NET_B] : [NET_B, NET_A];
  for (let i = 0; i < k; i++) {
    out.push({
      name: ini ? `r${i}` : `i${i}`,
      ...spec.conn,
      localAddrs: [local],
      remoteAddrs: [remote],
      localId: ini ? `i${i}.bench` : 'r.bench',
      remoteId: ini ? 'r.bench' : `i${i}.bench`,
      auth: 'psk',
      psk: PSK,
      children: [
        {
          name: 'c',
          localTs: [tsHost(localNet, i)],
          remoteTs: [tsHost(remoteNet, i)],
          espProposals: spec.esp,
          mode: 'tunnel',
        },
      ],
    });
  }
  return out;
}

/** A CharonWatch that polls charon's IKE SA counts over vici (complete = total − half-open, none half-open). */
export async function watchIkeSas(_c: Charon, vici: ViciClient): Promise<CharonWatch> {
  return {
    async waitUp(k, deadline) {
      for (;;) {
        const c = await vici.ikeSas();
        if (c.total - c.halfOpen >= k && c.halfOpen === 0) return true;
        if (performance.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async established() {
      const c = await vici.ikeSas();
      return c.total - c.halfOpen;
    },
    describe: async () => `ike ${JSON.stringify(await vici.ikeSas())}`,
    close() {},
  };
}

export async function countInstalled(c: Charon): Promise<number> {
  const sas = await c.listSas();
  return sas.filter((s) => s.state === 'ESTABLISHED' && s.children.some((ch) => ch.state === 'INSTALLED')).length;
}

export function setupMsg(
  role: 'initiator' | 'responder',
  k: number,
  v: Variant,
  ns: Netns,
  deadlineS: number,
): PeerSetup {
  const ini = role === 'initiator';
  return {
    type: 'setup',
    role,
    k,
    warmup: v.warmup,
    idle: v.idle,
    netns: ns.name,
    localAddr: ini ? ADDR_A : ADDR_B,
    remoteAddr: ini ? ADDR_B : ADDR_A,
    localNet: ini ? NET_A : NET_B,
    remoteNet: ini ? NET_B : NET_A,
    psk: PSK,
    deadlineMs: deadlineS * 1000,
  };
}

export function finishRun(r: Omit<RunResult, 'perSecondWall' | 'perCpuSecond'>): RunResult {
  const cpu = r.sides.reduce((s, x) => s + x.cpuS, 0);
  return { ...r, perSecondWall: r.k / r.wallS, perCpuSecond: r.k / cpu };
}

const coatiSide = (d: PeerDone, m0: MemSample, m1: MemSample): SideFigures => ({
  impl: 'coati',
  role: d.role,
  cpuS: (d.cpuUserUs + d.cpuSystemUs) / 1e6,
  rssDelta: m1.rss - m0.rss,
  heapDelta: m1.heapUsed + m1.external - (m0.heapUsed + m0.external),
  established: d.established,
  retransmits: d.retransmits,
});

/** A charon under measurement, with its vici request connection and its completion watch. */
interface Measured {
  charon: Charon;
  vici: ViciClient;
  watch: CharonWatch;
}

async function startCharon(spec: BenchSpec<Ceiling>, ns: Netns, name: string): Promise<Measured> {
  const charon = await Charon.start(ns, name, CHARON_OPTS);
  const vici = await ViciClient.open(charon.viciUri);
  const watch = await spec.watch(charon, vici);
  return { charon, vici, watch };
}

async function stopCharon(m: Measured): Promise<void> {
  m.vici.close();
  m.watch.close();
  await m.charon.stop();
}

const pidOf = (m: Measured) => m.charon.proc?.pid as number;
const cpuRss = (m: Measured) => ({ cpu: procCpuS(pidOf(m)), rss: procRss(pidOf(m)) });

// ---- scenarios ------------------------------------------------------------------

/** What a set of runs varies beside K. */
export interface Variant {
  /** Warm-up handshakes the same daemons ran before the measured K. */
  warmup: number;
  /** Peers configured beyond the K and the warm-up's, never initiated. */
  idle: number;
}

type ScenarioFn = (
  spec: BenchSpec<Ceiling>,
  lab: Lab,
  k: number,
  v: Variant,
  runNo: number,
  o: HandshakeBenchOptions,
) => Promise<RunResult>;

/** Namespace and process name part of a run. */
const runTag = (k: number, v: Variant, runNo: number) => `k${k}-w${v.warmup}-n${v.idle}-r${runNo}`;

/**
 * The warm-up in coati peer processes: `w` handshakes, then their SAs deleted, so
 * the measured K meet a JIT-compiled engine holding no other SA. Throws unless
 * every peer completed the warm-up's handshakes and holds no SA after it; returns
 * each peer's memory after the deletion (the RSS/heap baseline of the measured K).
 */
async function warmCoati<P extends ChildProcess[]>(
  peers: [...P],
  k: number,
  w: number,
  o: HandshakeBenchOptions,
): Promise<{ [I in keyof P]: PeerCool }> {
  // The peers' own deadline holds for each batch of k.
  const ws = await ask<PeerWarm, P>(peers, 'warmup', 'warm', (o.deadlineS * Math.ceil(w / k) + 20) * 1000);
  const bad = ws.find((x) => x.timedOut || x.established < w);
  if (bad) throw new Error(`warm-up incomplete: ${bad.established} of ${w} handshakes (${JSON.stringify(bad)})`);
  const cs = await ask<PeerCool, P>(peers, 'cooldown', 'cool', (o.deadlineS + 20) * 1000);
  const left = cs.find((c) => c.sas > 0 || c.kernelSas > 0);
  if (left) throw new Error(`warm-up SAs not deleted: ${left.sas} IKE SAs, ${left.kernelSas} kernel SAs left`);
  return cs;
}

/** Pipelined vici `initiate` of SAs from .. to-1 (timeout -1: charon queues each and answers at once). */
async function initiateCharon(m: Measured, from: number, to: number): Promise<number> {
  const answers = await Promise.all(
    Array.from({ length: to - from }, (_, i) =>
      m.vici.request('initiate', { child: 'c', ike: `r${from + i}`, timeout: '-1', 'init-limits': 'no' }),
    ),
  );
  return answers.filter((a) => a.success !== 'yes').length;
}

/**
 * The warm-up on charons, as warmCoati: the initiator's SAs k .. k+w-1 up, then
 * terminated, then their connections unloaded (charon looks a peer's config up
 * by a scan over all loaded connections, so w more would make each measured
 * handshake dearer). Throws unless every charon completed it and holds no IKE SA
 * after it. Returns each charon's completed-handshake count after it (the
 * watch's baseline for the measured K).
 */
async function warmCharons(
  ini: Measured | undefined,
  res: Measured | undefined,
  k: number,
  w: number,
  o: HandshakeBenchOptions,
): Promise<number[]> {
  const all = [ini, res].filter((m): m is Measured => m !== undefined);
  const states = async () => (await Promise.all(all.map((m) => m.watch.describe()))).join('; ');
  // In batches of k, as the coati initiator does; the deadline holds for each batch.
  let deadline: number;
  if (ini) {
    for (let from = 0; from < w; from += k) {
      const upTo = Math.min(from + k, w);
      deadline = performance.now() + o.deadlineS * 1000;
      const refused = await initiateCharon(ini, k + from, k + upTo);
      if (refused) throw new Error(`warm-up: charon refused ${refused} of ${upTo - from} initiations`);
      const ok = await Promise.all(all.map((m) => m.watch.waitUp(upTo, deadline)));
      if (!ok.every(Boolean)) throw new Error(`warm-up incomplete on charon: ${await states()}`);
    }
  } else {
    // A responder only (coati initiates): the whole warm-up at once.
    deadline = performance.now() + o.deadlineS * 1000 * Math.ceil(w / k);
    const ok = await Promise.all(all.map((m) => m.watch.waitUp(w, deadline)));
    if (!ok.every(Boolean)) throw new Error(`warm-up incomplete on charon: ${await states()}`);
  }
  if (ini) {
    const answers = await Promise.all(
      Array.from({ length: w }, (_, i) => ini.vici.request('terminate', { ike: `r${k + i}`, timeout: '-1' })),
    );
    const refused = answers.filter((a) => a.success !== 'yes').length;
    if (refused) throw new Error(`warm-up: charon refused ${refused} of ${w} terminations`);
  }
  deadline = performance.now() + o.deadlineS * 1000;
  for (;;) {
    const counts = await Promise.all(all.map((m) => m.vici.ikeSas()));
    if (counts.every((c) => c.total === 0)) break;
    if (performance.now() > deadline) throw new Error(`warm-up SAs not deleted on charon: ${await states()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const [m, prefix] of [
    [ini, 'r'],
    [res, 'i'],
  ] as const) {
    if (!m) continue;
    const answers = await Promise.all(
      Array.from({ length: w }, (_, i) => m.vici.request('unload-conn', { name: `${prefix}${k + i}` })),
    );
    const refused = answers.filter((a) => a.success !== 'yes');
    if (refused.length) throw new Error(`warm-up: charon refused to unload ${refused.length} of ${w} connections`);
  }
  return Promise.all(all.map((m) => m.watch.established()));
}

const runCoati: ScenarioFn = async (spec, lab, k, v, runNo, o) => {
  const w = v.warmup;
  const { a, b } = await pair(lab, `${spec.nsTags.coati}${runTag(k, v, runNo)}`, k + w);
  const resp = forkPeer(spec.peerScript, o, `${spec.forkPrefix}coati-resp-${runTag(k, v, runNo)}`);
  const init = forkPeer(spec.peerScript, o, `${spec.forkPrefix}coati-init-${runTag(k, v, runNo)}`);
  try {
    const rReady = waitMsg<{ mem: MemSample }>(resp, 'ready', 20_000);
    const iReady = waitMsg<{ mem: MemSample }>(init, 'ready', 20_000);
    resp.send(setupMsg('responder', k, v, b, o.deadlineS));
    init.send(setupMsg('initiator', k, v, a, o.deadlineS));
    let [r0, i0] = await Promise.all([rReady, iReady]);
    if (w > 0) [r0, i0] = await warmCoati([resp, init], k, w, o);
    const drops0 = await drops(a, b);
    const [rDone, iDone] = await ask<PeerDone>([resp, init], 'start', 'done', (o.deadlineS + 20) * 1000);
    const drops1 = await drops(a, b);
    const [r1, i1] = await ask<{ mem: MemSample }>([resp, init], 'stats', 'stats', 20_000);
    // Both peers counting K installed pairs is not enough: the pairs must still be in both kernels.
    const installed = Math.min(iDone.kernelSas, rDone.kernelSas) / 2;
    const ok = !iDone.timedOut && !rDone.timedOut && iDone.established >= k && rDone.established >= k && installed >= k;
    return finishRun({
      scenario: 'coati',
      k,
      ...v,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : {
            note: `${installed} of ${k} SA pairs in both kernels; initiator ${JSON.stringify(iDone)}; responder ${JSON.stringify(rDone)}`,
          }),
      wallS: Math.max(iDone.elapsedMs, rDone.elapsedMs) / 1000,
      sides: [coatiSide(iDone, i0.mem, i1.mem), coatiSide(rDone, r0.mem, r1.mem)],
      udpRcvbufErrors: dropsDelta(drops0, drops1),
      childSasInstalled: installed,
    });
  } finally {
    await Promise.all([stopPeer(init), stopPeer(resp)]);
    await a.destroy();
    await b.destroy();
  }
};

const runCharon: ScenarioFn = async (spec, lab, k, v, runNo, o) => {
  const w = v.warmup;
  const { a, b } = await pair(lab, `${spec.nsTags.charon}${runTag(k, v, runNo)}`, k + w);
  const ini = await startCharon(spec, a, `${spec.charonPrefix}ini-${runTag(k, v, runNo)}`);
  const res = await startCharon(spec, b, `${spec.charonPrefix}res-${runTag(k, v, runNo)}`);
  try {
    await res.charon.loadConns(charonConns(spec, 'responder', k + w + v.idle));
    await ini.charon.loadConns(charonConns(spec, 'initiator', k + w + v.idle));
    // Completed handshakes before the measured K (the warm-up's, when the watch counts cumulatively).
    const [iBase = 0, rBase = 0] = w > 0 ? await warmCharons(ini, res, k, w, o) : [];
    const drops0 = await drops(a, b);
    const s0 = [cpuRss(ini), cpuRss(res)];
    const t0 = performance.now();
    const deadline = t0 + o.deadlineS * 1000;
    const refused = await initiateCharon(ini, 0, k);
    // Both CPU figures are read when the LAST side completed its K-th handshake.
    const [iOk, rOk] = await Promise.all([
      ini.watch.waitUp(iBase + k, deadline),
      res.watch.waitUp(rBase + k, deadline),
    ]);
    const wallS = (performance.now() - t0) / 1000;
    const s1 = [cpuRss(ini), cpuRss(res)];
    const drops1 = await drops(a, b);
    const established = [(await ini.watch.established()) - iBase, (await res.watch.established()) - rBase];
    const installed = Math.min(await countInstalled(ini.charon), await countInstalled(res.charon));
    const side = (i: 0 | 1): SideFigures => ({
      impl: 'charon',
      role: i === 0 ? 'initiator' : 'responder',
      cpuS: (s1[i]?.cpu as number) - (s0[i]?.cpu as number),
      rssDelta: (s1[i]?.rss as number) - (s0[i]?.rss as number),
      established: established[i] as number,
    });
    const ok = iOk && rOk && refused === 0 && installed >= k;
    return finishRun({
      scenario: 'charon',
      k,
      ...v,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : {
            note: `initiator ${await ini.watch.describe()}; responder ${await res.watch.describe()}; refused=${refused} installed=${installed}`,
          }),
      wallS,
      sides: [side(0), side(1)],
      udpRcvbufErrors: dropsDelta(drops0, drops1),
      childSasInstalled: installed,
    });
  } finally {
    await stopCharon(ini);
    await stopCharon(res);
    await a.destroy();
    await b.destroy();
  }
};

const runMixed: ScenarioFn = async (spec, lab, k, v, runNo, o) => {
  const w = v.warmup;
  const { a, b } = await pair(lab, `${spec.nsTags.mixed}${runTag(k, v, runNo)}`, k + w);
  const res = await startCharon(spec, b, `${spec.charonPrefix}mres-${runTag(k, v, runNo)}`);
  const init = forkPeer(spec.peerScript, o, `${spec.forkPrefix}mixed-init-${runTag(k, v, runNo)}`);
  try {
    await res.charon.loadConns(charonConns(spec, 'responder', k + w + v.idle));
    const iReady = waitMsg<{ mem: MemSample }>(init, 'ready', 20_000);
    init.send(setupMsg('initiator', k, v, a, o.deadlineS));
    let i0: { mem: MemSample } = await iReady;
    let rBase = 0;
    if (w > 0) {
      // coati initiates the warm-up and deletes its SAs; charon is only watched until it holds none.
      const [[iw], [rw = 0]] = await Promise.all([warmCoati([init], k, w, o), warmCharons(undefined, res, k, w, o)]);
      i0 = iw;
      rBase = rw;
    }
    const drops0 = await drops(a, b);
    const s0 = cpuRss(res);
    const iDoneP = waitMsg<PeerDone>(init, 'done', (o.deadlineS + 20) * 1000);
    const t0 = performance.now();
    init.send({ type: 'start' });
    const iDone = await iDoneP;
    const charonDone = await res.watch.waitUp(rBase + k, t0 + o.deadlineS * 1000);
    const wallS = spec.mixedWall === 'initiator' ? iDone.elapsedMs / 1000 : (performance.now() - t0) / 1000;
    const s1 = cpuRss(res);
    const drops1 = await drops(a, b);
    const iStatsP = waitMsg<{ mem: MemSample }>(init, 'stats', 20_000);
    init.send({ type: 'stats' });
    const i1 = await iStatsP;
    const established = (await res.watch.established()) - rBase;
    const installed = await countInstalled(res.charon);
    const ok = !iDone.timedOut && charonDone && iDone.established >= k && installed >= k;
    return finishRun({
      scenario: 'mixed',
      k,
      ...v,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : { note: `coati ${JSON.stringify(iDone)}; charon ${await res.watch.describe()} installed=${installed}` }),
      wallS,
      sides: [
        coatiSide(iDone, i0.mem, i1.mem),
        { impl: 'charon', role: 'responder', cpuS: s1.cpu - s0.cpu, rssDelta: s1.rss - s0.rss, established },
      ],
      udpRcvbufErrors: dropsDelta(drops0, drops1),
      childSasInstalled: installed,
    });
  } finally {
    await stopPeer(init);
    await stopCharon(res);
    await a.destroy();
    await b.destroy();
  }
};

const SCENARIOS: Record<Scenario, ScenarioFn> = { coati: runCoati, charon: runCharon, mixed: runMixed };

// ---- report -----------------------------------------------------------------------

export const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export interface Summary extends Variant {
  scenario: Scenario;
  k: number;
  runs: number;
  ok: boolean;
  perSecondWall: number;
  perCpuSecond: number;
  /** CPU µs per handshake, per role. */
  initiatorCpuUs: number;
  responderCpuUs: number;
  /** RSS growth per IKE SA (with its Child SA), bytes, per role. */
  initiatorRssPerSa: number;
  responderRssPerSa: number;
  initiatorHeapPerSa?: number;
  responderHeapPerSa?: number;
  udpRcvbufErrors: number;
  retransmits: number;
}

export function summarize(results: RunResult[]): Summary[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = `${r.scenario}|${r.k}|${r.warmup}|${r.idle}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const out: Summary[] = [];
  for (const rs of groups.values()) {
    const first = rs[0] as RunResult;
    const role = (r: RunResult, role: 'initiator' | 'responder') => r.sides.find((s) => s.role === role) as SideFigures;
    const heap = (which: 'initiator' | 'responder') =>
      rs.every((r) => role(r, which).heapDelta !== undefined)
        ? median(rs.map((r) => (role(r, which).heapDelta as number) / r.k))
        : undefined;
    const ih = heap('initiator');
    const rh = heap('responder');
    out.push({
      scenario: first.scenario,
      k: first.k,
      warmup: first.warmup,
      idle: first.idle,
      runs: rs.length,
      ok: rs.every((r) => r.ok),
      perSecondWall: median(rs.map((r) => r.perSecondWall)),
      perCpuSecond: median(rs.map((r) => r.perCpuSecond)),
      initiatorCpuUs: median(rs.map((r) => (role(r, 'initiator').cpuS / r.k) * 1e6)),
      responderCpuUs: median(rs.map((r) => (role(r, 'responder').cpuS / r.k) * 1e6)),
      initiatorRssPerSa: median(rs.map((r) => role(r, 'initiator').rssDelta / r.k)),
      responderRssPerSa: median(rs.map((r) => role(r, 'responder').rssDelta / r.k)),
      ...(ih !== undefined ? { initiatorHeapPerSa: ih } : {}),
      ...(rh !== undefined ? { responderHeapPerSa: rh } : {}),
      udpRcvbufErrors: rs.reduce((s, r) => s + r.udpRcvbufErrors.initiator + r.udpRcvbufErrors.responder, 0),
      retransmits: rs.reduce((s, r) => s + r.sides.reduce((t, x) => t + (x.retransmits ?? 0), 0), 0),
    });
  }
  return out;
}

export const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-');
export const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
export const kb = (n: number) => (Number.isFinite(n) ? `${(n / 1024).toFixed(1)}` : '-');

export const NAMES: Record<Scenario, string> = {
  coati: 'coati->coati',
  charon: 'charon->charon',
  mixed: 'coati->charon',
};

export interface Ratios extends Variant {
  k: number;
  /**
   * A warm-up variant: coati's hs/CPU-s against charon's COLD figure (same K and idle
   * peers, same run). charon is compiled code with nothing to warm up, and it got
   * slower, not faster, after a warm-up here (bench/README.md), so its cold figure is
   * its best: this is the running-daemon comparison.
   */
  coatiOverColdCharonPerCpuSecond?: number;
  coatiOverCharonPerCpuSecond?: number;
  coatiOverCeiling?: number;
  coatiInitiatorOverCharonInitiator?: number;
  coatiResponderOverCharonResponder?: number;
  /** Only when the bench has targets. */
  targetCharonMet?: boolean;
  targetCeilingMet?: boolean;
}

export function ratios(summaries: Summary[], ceiling: number, targets = true): Ratios[] {
  const groups = [...new Map(summaries.map((s) => [`${s.k}|${s.warmup}|${s.idle}`, s])).values()];
  return groups.map(({ k, warmup, idle }) => {
    const same = (x: Summary) => x.k === k && x.warmup === warmup && x.idle === idle;
    const c = summaries.find((x) => same(x) && x.scenario === 'coati');
    const s = summaries.find((x) => same(x) && x.scenario === 'charon');
    const r: Ratios = { k, warmup, idle };
    if (c) {
      r.coatiOverCeiling = c.perCpuSecond / ceiling;
      if (targets) r.targetCeilingMet = c.ok && r.coatiOverCeiling >= 0.5;
    }
    if (c && s) {
      r.coatiOverCharonPerCpuSecond = c.perCpuSecond / s.perCpuSecond;
      r.coatiInitiatorOverCharonInitiator = s.initiatorCpuUs / c.initiatorCpuUs;
      r.coatiResponderOverCharonResponder = s.responderCpuUs / c.responderCpuUs;
      if (targets) r.targetCharonMet = c.ok && s.ok && r.coatiOverCharonPerCpuSecond >= 1;
    }
    const cold = summaries.find((x) => x.k === k && x.warmup === 0 && x.idle === idle && x.scenario === 'charon');
    if (c && cold && warmup > 0) r.coatiOverColdCharonPerCpuSecond = c.perCpuSecond / cold.perCpuSecond;
    return r;
  });
}

function printReport<C extends Ceiling>(spec: BenchSpec<C>, summaries: Summary[], rs: Ratios[], ceiling: C): string {
  const lines: string[] = [];
  lines.push(
    spec.ceilingLine(ceiling),
    '',
    `${'scenario'.padEnd(16)}${'K'.padStart(6)} ${'warm-up'.padStart(8)} ${'idle'.padStart(6)} ${'ok'.padStart(4)} ${'hs/s wall'.padStart(10)} ${'hs/CPU-s'.padStart(9)} ` +
      `${'CPU µs/hs I'.padStart(12)} ${'CPU µs/hs R'.padStart(12)} ${'RSS KB/SA I'.padStart(12)} ${'RSS KB/SA R'.padStart(12)} ` +
      `${'heap KB/SA I'.padStart(13)} ${'heap KB/SA R'.padStart(13)} ${'rcvbuf drops'.padStart(13)} ${'retx'.padStart(5)}`,
  );
  for (const s of summaries) {
    lines.push(
      `${NAMES[s.scenario].padEnd(16)}${String(s.k).padStart(6)} ${String(s.warmup).padStart(8)} ${String(s.idle).padStart(6)} ${(s.ok ? 'yes' : 'NO').padStart(4)} ${f0(s.perSecondWall).padStart(10)} ` +
        `${f0(s.perCpuSecond).padStart(9)} ${f0(s.initiatorCpuUs).padStart(12)} ${f0(s.responderCpuUs).padStart(12)} ` +
        `${kb(s.initiatorRssPerSa).padStart(12)} ${kb(s.responderRssPerSa).padStart(12)} ` +
        `${kb(s.initiatorHeapPerSa ?? Number.NaN).padStart(13)} ${kb(s.responderHeapPerSa ?? Number.NaN).padStart(13)} ` +
        `${String(s.udpRcvbufErrors).padStart(13)} ${String(s.retransmits).padStart(5)}`,
    );
  }
  lines.push('');
  const target = (min: number, met: boolean | undefined) =>
    spec.targets ? ` (target >= ${min}: ${met ? 'MET' : 'NOT met'})` : '';
  for (const r of rs) {
    const parts = [
      `K=${r.k}, ${r.warmup ? `after ${r.warmup} warm-up handshakes` : 'cold'}${r.idle ? `, ${r.idle} idle peers` : ''}:`,
    ];
    if (r.coatiOverCharonPerCpuSecond !== undefined)
      parts.push(
        `coati/charon per CPU-s ${f2(r.coatiOverCharonPerCpuSecond)}${target(1, r.targetCharonMet)};` +
          ` initiator ${f2(r.coatiInitiatorOverCharonInitiator ?? Number.NaN)}, responder ${f2(r.coatiResponderOverCharonResponder ?? Number.NaN)}${spec.sideRatioNote};`,
      );
    if (r.coatiOverColdCharonPerCpuSecond !== undefined)
      parts.push(`against charon's cold run: ${f2(r.coatiOverColdCharonPerCpuSecond)};`);
    if (r.coatiOverCeiling !== undefined)
      parts.push(`coati/crypto-ceiling ${f2(r.coatiOverCeiling)}${target(0.5, r.targetCeilingMet)}`);
    lines.push(parts.join(' '));
  }
  return lines.join('\n');
}

// ---- main -------------------------------------------------------------------------

/** Runs the bench's scenarios for every K and run, prints the report and writes the JSON results. */
export async function runBench<C extends Ceiling>(
  spec: BenchSpec<C>,
  o: HandshakeBenchOptions,
): Promise<{ file: string; report: string }> {
  if (process.getuid?.() !== 0) throw new Error(`bench/${spec.name} needs root (network namespaces)`);
  const started = new Date();
  // The peers apply these themselves (bench/handshake-peer-harness.ts), as coatid does; checked here first.
  const coatiV8Flags = daemonV8Flags();
  const coatiNodeArgs = benchNodeArgs();
  console.log(
    `${spec.version} handshake bench: K=${o.ks.join(',')} warm-up=${o.warmups.join(',')} idle=${o.idles.join(',')} runs=${o.runs} scenarios=${o.scenarios.join(',')}`,
  );
  console.log(
    `coati peers: V8 flags ${coatiV8Flags.join(' ') || '(V8 defaults)'}${process.env.COATI_V8_FLAGS === undefined ? " (coatid's)" : ' (COATI_V8_FLAGS)'}` +
      `${coatiNodeArgs.length ? `, node args ${coatiNodeArgs.join(' ')} (COATI_BENCH_NODE_ARGS)` : ''}`,
  );
  const ceiling = spec.ceiling(o.seconds);
  console.log(spec.ceilingStart(ceiling));
  const lab = await Lab.create({ label: spec.labLabel });
  const results: RunResult[] = [];
  try {
    for (const k of o.ks) {
      for (const v of o.warmups.flatMap((warmup) => o.idles.map((idle) => ({ warmup, idle })))) {
        for (let runNo = 0; runNo < o.runs; runNo++) {
          for (const sc of o.scenarios) {
            let r: RunResult;
            const label = `K=${String(k).padEnd(5)} warm-up ${String(v.warmup).padEnd(5)} idle ${String(v.idle).padEnd(5)}`;
            try {
              r = await SCENARIOS[sc](spec as BenchSpec<Ceiling>, lab, k, v, runNo, o);
            } catch (err) {
              const msg = (err as Error).message.split('\n').slice(0, 6).join(' | ');
              console.log(`  ${NAMES[sc]} ${label}: FAILED ${msg}`);
              continue;
            }
            results.push(r);
            console.log(
              `  ${NAMES[sc].padEnd(15)} ${label} ` +
                `${r.ok ? 'ok' : 'INCOMPLETE'} wall ${f2(r.wallS)} s, ` +
                `${f0(r.perSecondWall)}/s wall, ${f0(r.perCpuSecond)} per CPU-s` +
                (r.note ? `\n    ${r.note.slice(0, 600)}` : ''),
            );
          }
        }
      }
    }
  } finally {
    await lab.destroy().catch((e: Error) => console.error(e.message));
  }
  const summaries = summarize(results);
  const rs = ratios(summaries, ceiling.perSecond, spec.targets);
  const report = printReport(spec, summaries, rs, ceiling);
  console.log(`\n${report}`);
  const charonVersion = (
    await run(['swanctl', '--version'], { allowFail: true }).catch(() => undefined)
  )?.stdout.trim();
  const stamp = started.toISOString().slice(0, 16).replace(':', '');
  const file = o.out ?? join(HERE, '..', '..', 'bench', 'results', `${spec.name}-${stamp}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        started: started.toISOString(),
        node: process.version,
        openssl: process.versions.openssl,
        charon: charonVersion,
        cpus: cpus().map((c) => c.model)[0],
        ncpu: cpus().length,
        options: { ...o },
        coatiV8Flags,
        coatiNodeArgs,
        suite: spec.suite,
        cryptoCeiling: ceiling,
        summaries,
        ratios: rs,
        runs: results,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${file}`);
  return { file, report };
}

/** The entry point of a bench module run as a script. */
export function main(moduleUrl: string, fn: (argv: string[]) => Promise<unknown>): void {
  if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(moduleUrl)) {
    fn(process.argv.slice(2)).catch((err) => {
      console.error(err);
      process.exit(1);
    });
  }
}
