/**
 * IKEv2 handshake throughput, CPU and memory: coati against strongSwan charon
 * and against a crypto-only ceiling, all measured in the same run on this
 * machine. Figures are reported as ratios against those references.
 *
 *   npx tsc -p . && node dist/bench/handshake.js [--k 100,500] [--seconds 3]
 *        [--runs 1] [--scenarios coati,charon,mixed] [--deadline 60] [--profile DIR] [--out FILE]
 *
 * Needs root (network namespaces), the native addon, and strongSwan 5.9
 * (charon, swanctl) for the charon scenarios. See bench/README.md.
 *
 * Scenarios (each K IKE SAs, PSK, X25519, AES-GCM-256, PRF HMAC-SHA-256, first
 * Child SA ESP AES-GCM-256 in tunnel mode, all initiated at once, from namespace
 * A (198.51.100.1) to namespace B (198.51.100.2) over a veth):
 *   coati   coati -> coati: two forked processes (bench/handshake-peer.ts), MemoryKernel.
 *   charon  charon -> charon: kernel-libipsec (userspace ESP, so Child SAs install on a
 *           kernel without ESP), half-open/cookie limits raised, IKE SA table sized.
 *   mixed   coati -> charon: coati initiator process, charon responder as above.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Charon, type CharonOptions } from '../test/harness/charon.js';
import { Lab, type Netns, run } from '../test/harness/netns.js';
import type { ConnSpec } from '../test/harness/swanctl-conf.js';
import { type MemSample, type PeerDone, type PeerSetup, tsHost } from './handshake-common.js';
import { cryptoCeiling } from './handshake-crypto.js';
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
  seconds: number;
  runs: number;
  scenarios: Scenario[];
  deadlineS: number;
  profileDir?: string;
  out?: string;
}

export type Scenario = 'coati' | 'charon' | 'mixed';

export function parseArgs(argv: string[]): HandshakeBenchOptions {
  const o: HandshakeBenchOptions = {
    ks: [100, 500],
    seconds: 3,
    runs: 1,
    scenarios: ['coati', 'charon', 'mixed'],
    deadlineS: 60,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1] ?? '';
    if (a === '--k') o.ks = v.split(',').map(Number);
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
  return o;
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

export interface RunResult {
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

function forkPeer(opts: HandshakeBenchOptions, label: string): ChildProcess {
  const execArgv = ['--expose-gc'];
  if (opts.profileDir)
    execArgv.push('--cpu-prof', '--cpu-prof-dir', opts.profileDir, '--cpu-prof-name', `${label}.cpuprofile`);
  return fork(join(HERE, 'handshake-peer.js'), [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

function charonConns(role: 'initiator' | 'responder', k: number): ConnSpec[] {
  const out: ConnSpec[] = [];
  const ini = role === 'initiator';
  const [local, remote] = ini ? [ADDR_A, ADDR_B] : [ADDR_B, ADDR_A];
  const [localNet, remoteNet] = ini ? [NET_A, NET_B] : [NET_B, NET_A];
  for (let i = 0; i < k; i++) {
    out.push({
      name: ini ? `r${i}` : `i${i}`,
      version: 2,
      localAddrs: [local],
      remoteAddrs: [remote],
      localId: ini ? `i${i}.bench` : 'r.bench',
      remoteId: ini ? 'r.bench' : `i${i}.bench`,
      auth: 'psk',
      psk: PSK,
      proposals: ['aes256gcm16-prfsha256-x25519'],
      mobike: false,
      children: [
        {
          name: 'c',
          localTs: [tsHost(localNet, i)],
          remoteTs: [tsHost(remoteNet, i)],
          espProposals: ['aes256gcm16'],
          mode: 'tunnel',
        },
      ],
    });
  }
  return out;
}

/** Polls charon's IKE SA counts over vici until `k` are up (total − half-open), or the deadline. */
async function waitCharons(clients: ViciClient[], k: number, deadline: number): Promise<boolean> {
  for (;;) {
    const counts = await Promise.all(clients.map((c) => c.ikeSas()));
    if (counts.every((c) => c.total - c.halfOpen >= k && c.halfOpen === 0)) return true;
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function countInstalled(c: Charon): Promise<number> {
  const sas = await c.listSas();
  return sas.filter((s) => s.state === 'ESTABLISHED' && s.children.some((ch) => ch.state === 'INSTALLED')).length;
}

export function setupMsg(role: 'initiator' | 'responder', k: number, ns: Netns, deadlineS: number): PeerSetup {
  const ini = role === 'initiator';
  return {
    type: 'setup',
    role,
    k,
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

// ---- scenarios ------------------------------------------------------------------

async function runCoati(lab: Lab, k: number, runNo: number, o: HandshakeBenchOptions): Promise<RunResult> {
  const { a, b } = await pair(lab, `c${k}r${runNo}`, k);
  const resp = forkPeer(o, `coati-resp-k${k}-r${runNo}`);
  const init = forkPeer(o, `coati-init-k${k}-r${runNo}`);
  try {
    const rReady = waitMsg<{ mem: MemSample }>(resp, 'ready', 20_000);
    const iReady = waitMsg<{ mem: MemSample }>(init, 'ready', 20_000);
    resp.send(setupMsg('responder', k, b, o.deadlineS));
    init.send(setupMsg('initiator', k, a, o.deadlineS));
    const [r0, i0] = await Promise.all([rReady, iReady]);
    const drops0 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const rDoneP = waitMsg<PeerDone>(resp, 'done', (o.deadlineS + 20) * 1000);
    const iDoneP = waitMsg<PeerDone>(init, 'done', (o.deadlineS + 20) * 1000);
    resp.send({ type: 'start' });
    init.send({ type: 'start' });
    const [rDone, iDone] = await Promise.all([rDoneP, iDoneP]);
    const drops1 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const rStatsP = waitMsg<{ mem: MemSample }>(resp, 'stats', 20_000);
    const iStatsP = waitMsg<{ mem: MemSample }>(init, 'stats', 20_000);
    resp.send({ type: 'stats' });
    init.send({ type: 'stats' });
    const [r1, i1] = await Promise.all([rStatsP, iStatsP]);
    const side = (d: PeerDone, m0: MemSample, m1: MemSample): SideFigures => ({
      impl: 'coati',
      role: d.role,
      cpuS: (d.cpuUserUs + d.cpuSystemUs) / 1e6,
      rssDelta: m1.rss - m0.rss,
      heapDelta: m1.heapUsed + m1.external - (m0.heapUsed + m0.external),
      established: d.established,
      retransmits: d.retransmits,
    });
    const ok = !iDone.timedOut && !rDone.timedOut && iDone.established >= k && rDone.established >= k;
    return finishRun({
      scenario: 'coati',
      k,
      run: runNo,
      ok,
      ...(ok ? {} : { note: `initiator ${JSON.stringify(iDone)}; responder ${JSON.stringify(rDone)}` }),
      wallS: Math.max(iDone.elapsedMs, rDone.elapsedMs) / 1000,
      sides: [side(iDone, i0.mem, i1.mem), side(rDone, r0.mem, r1.mem)],
      udpRcvbufErrors: {
        initiator: (drops1[0] ?? 0) - (drops0[0] ?? 0),
        responder: (drops1[1] ?? 0) - (drops0[1] ?? 0),
      },
      childSasInstalled: Math.min(iDone.kernelSas, rDone.kernelSas) / 2,
    });
  } finally {
    await Promise.all([stopPeer(init), stopPeer(resp)]);
    await a.destroy();
    await b.destroy();
  }
}

async function runCharon(lab: Lab, k: number, runNo: number, o: HandshakeBenchOptions): Promise<RunResult> {
  const { a, b } = await pair(lab, `s${k}r${runNo}`, k);
  const ini = await Charon.start(a, `ini-k${k}-r${runNo}`, CHARON_OPTS);
  const res = await Charon.start(b, `res-k${k}-r${runNo}`, CHARON_OPTS);
  const vi = await ViciClient.open(ini.viciUri);
  const vr = await ViciClient.open(res.viciUri);
  try {
    await res.loadConns(charonConns('responder', k));
    await ini.loadConns(charonConns('initiator', k));
    const pi = ini.proc?.pid as number;
    const pr = res.proc?.pid as number;
    const drops0 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const cpu0 = [procCpuS(pi), procCpuS(pr)];
    const rss0 = [procRss(pi), procRss(pr)];
    const t0 = performance.now();
    // Pipelined `initiate` requests with timeout -1: charon queues each and answers at once.
    const answers = await Promise.all(
      Array.from({ length: k }, (_, i) =>
        vi.request('initiate', { child: 'c', ike: `r${i}`, timeout: '-1', 'init-limits': 'no' }),
      ),
    );
    const refused = answers.filter((m) => m.success !== 'yes');
    const done = await waitCharons([vi, vr], k, t0 + o.deadlineS * 1000);
    const wallS = (performance.now() - t0) / 1000;
    const cpu1 = [procCpuS(pi), procCpuS(pr)];
    const rss1 = [procRss(pi), procRss(pr)];
    const drops1 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const counts = await Promise.all([vi.ikeSas(), vr.ikeSas()]);
    const installed = Math.min(await countInstalled(ini), await countInstalled(res));
    const side = (i: 0 | 1): SideFigures => ({
      impl: 'charon',
      role: i === 0 ? 'initiator' : 'responder',
      cpuS: (cpu1[i] as number) - (cpu0[i] as number),
      rssDelta: (rss1[i] as number) - (rss0[i] as number),
      established: (counts[i]?.total ?? 0) - (counts[i]?.halfOpen ?? 0),
    });
    const ok = done && refused.length === 0 && installed >= k;
    return finishRun({
      scenario: 'charon',
      k,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : {
            note: `done=${done} refused=${refused.length} ${JSON.stringify(refused[0] ?? {})} installed=${installed} counts=${JSON.stringify(counts)}`,
          }),
      wallS,
      sides: [side(0), side(1)],
      udpRcvbufErrors: {
        initiator: (drops1[0] ?? 0) - (drops0[0] ?? 0),
        responder: (drops1[1] ?? 0) - (drops0[1] ?? 0),
      },
      childSasInstalled: installed,
    });
  } finally {
    vi.close();
    vr.close();
    await ini.stop();
    await res.stop();
    await a.destroy();
    await b.destroy();
  }
}

async function runMixed(lab: Lab, k: number, runNo: number, o: HandshakeBenchOptions): Promise<RunResult> {
  const { a, b } = await pair(lab, `m${k}r${runNo}`, k);
  const res = await Charon.start(b, `mres-k${k}-r${runNo}`, CHARON_OPTS);
  const vr = await ViciClient.open(res.viciUri);
  const init = forkPeer(o, `mixed-init-k${k}-r${runNo}`);
  try {
    await res.loadConns(charonConns('responder', k));
    const iReady = waitMsg<{ mem: MemSample }>(init, 'ready', 20_000);
    init.send(setupMsg('initiator', k, a, o.deadlineS));
    const i0 = await iReady;
    const pr = res.proc?.pid as number;
    const drops0 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const cpu0 = procCpuS(pr);
    const rss0 = procRss(pr);
    const iDoneP = waitMsg<PeerDone>(init, 'done', (o.deadlineS + 20) * 1000);
    const t0 = performance.now();
    init.send({ type: 'start' });
    const iDone = await iDoneP;
    const charonDone = await waitCharons([vr], k, t0 + o.deadlineS * 1000);
    const cpu1 = procCpuS(pr);
    const rss1 = procRss(pr);
    const drops1 = [await udpRcvbufErrors(a), await udpRcvbufErrors(b)];
    const iStatsP = waitMsg<{ mem: MemSample }>(init, 'stats', 20_000);
    init.send({ type: 'stats' });
    const i1 = await iStatsP;
    const counts = await vr.ikeSas();
    const installed = await countInstalled(res);
    const ok = !iDone.timedOut && charonDone && iDone.established >= k && installed >= k;
    return finishRun({
      scenario: 'mixed',
      k,
      run: runNo,
      ok,
      ...(ok
        ? {}
        : { note: `coati ${JSON.stringify(iDone)}; charon ${JSON.stringify(counts)} installed=${installed}` }),
      wallS: iDone.elapsedMs / 1000,
      sides: [
        {
          impl: 'coati',
          role: 'initiator',
          cpuS: (iDone.cpuUserUs + iDone.cpuSystemUs) / 1e6,
          rssDelta: i1.mem.rss - i0.mem.rss,
          heapDelta: i1.mem.heapUsed + i1.mem.external - (i0.mem.heapUsed + i0.mem.external),
          established: iDone.established,
          retransmits: iDone.retransmits,
        },
        {
          impl: 'charon',
          role: 'responder',
          cpuS: cpu1 - cpu0,
          rssDelta: rss1 - rss0,
          established: counts.total - counts.halfOpen,
        },
      ],
      udpRcvbufErrors: {
        initiator: (drops1[0] ?? 0) - (drops0[0] ?? 0),
        responder: (drops1[1] ?? 0) - (drops0[1] ?? 0),
      },
      childSasInstalled: installed,
    });
  } finally {
    vr.close();
    await stopPeer(init);
    await res.stop();
    await a.destroy();
    await b.destroy();
  }
}

// ---- report -----------------------------------------------------------------------

export const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export interface Summary {
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
    const key = `${r.scenario}|${r.k}`;
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

export interface Ratios {
  k: number;
  coatiOverCharonPerCpuSecond?: number;
  coatiOverCeiling?: number;
  coatiInitiatorOverCharonInitiator?: number;
  coatiResponderOverCharonResponder?: number;
  targetCharonMet?: boolean;
  targetCeilingMet?: boolean;
}

export function ratios(summaries: Summary[], ceiling: number): Ratios[] {
  const ks = [...new Set(summaries.map((s) => s.k))];
  return ks.map((k) => {
    const c = summaries.find((s) => s.k === k && s.scenario === 'coati');
    const s = summaries.find((x) => x.k === k && x.scenario === 'charon');
    const r: Ratios = { k };
    if (c) {
      r.coatiOverCeiling = c.perCpuSecond / ceiling;
      r.targetCeilingMet = c.ok && r.coatiOverCeiling >= 0.5;
    }
    if (c && s) {
      r.coatiOverCharonPerCpuSecond = c.perCpuSecond / s.perCpuSecond;
      r.coatiInitiatorOverCharonInitiator = s.initiatorCpuUs / c.initiatorCpuUs;
      r.coatiResponderOverCharonResponder = s.responderCpuUs / c.responderCpuUs;
      r.targetCharonMet = c.ok && s.ok && r.coatiOverCharonPerCpuSecond >= 1;
    }
    return r;
  });
}

function printReport(summaries: Summary[], rs: Ratios[], ceiling: { perSecond: number; rounds: number[] }): string {
  const lines: string[] = [];
  lines.push(
    `crypto-only ceiling (both peers' crypto of one handshake, one core): ${f0(ceiling.perSecond)} handshakes/s ` +
      `(rounds ${ceiling.rounds.map(f0).join(', ')})`,
    '',
    `${'scenario'.padEnd(16)}${'K'.padStart(6)} ${'ok'.padStart(4)} ${'hs/s wall'.padStart(10)} ${'hs/CPU-s'.padStart(9)} ` +
      `${'CPU µs/hs I'.padStart(12)} ${'CPU µs/hs R'.padStart(12)} ${'RSS KB/SA I'.padStart(12)} ${'RSS KB/SA R'.padStart(12)} ` +
      `${'heap KB/SA I'.padStart(13)} ${'heap KB/SA R'.padStart(13)} ${'rcvbuf drops'.padStart(13)} ${'retx'.padStart(5)}`,
  );
  for (const s of summaries) {
    lines.push(
      `${NAMES[s.scenario].padEnd(16)}${String(s.k).padStart(6)} ${(s.ok ? 'yes' : 'NO').padStart(4)} ${f0(s.perSecondWall).padStart(10)} ` +
        `${f0(s.perCpuSecond).padStart(9)} ${f0(s.initiatorCpuUs).padStart(12)} ${f0(s.responderCpuUs).padStart(12)} ` +
        `${kb(s.initiatorRssPerSa).padStart(12)} ${kb(s.responderRssPerSa).padStart(12)} ` +
        `${kb(s.initiatorHeapPerSa ?? Number.NaN).padStart(13)} ${kb(s.responderHeapPerSa ?? Number.NaN).padStart(13)} ` +
        `${String(s.udpRcvbufErrors).padStart(13)} ${String(s.retransmits).padStart(5)}`,
    );
  }
  lines.push('');
  for (const r of rs) {
    const parts = [`K=${r.k}:`];
    if (r.coatiOverCharonPerCpuSecond !== undefined)
      parts.push(
        `coati/charon per CPU-s ${f2(r.coatiOverCharonPerCpuSecond)} (target >= 1: ${r.targetCharonMet ? 'MET' : 'NOT met'});` +
          ` initiator ${f2(r.coatiInitiatorOverCharonInitiator ?? Number.NaN)}, responder ${f2(r.coatiResponderOverCharonResponder ?? Number.NaN)};`,
      );
    if (r.coatiOverCeiling !== undefined)
      parts.push(
        `coati/crypto-ceiling ${f2(r.coatiOverCeiling)} (target >= 0.5: ${r.targetCeilingMet ? 'MET' : 'NOT met'})`,
      );
    lines.push(parts.join(' '));
  }
  return lines.join('\n');
}

// ---- main -------------------------------------------------------------------------

export async function handshakeBench(o: HandshakeBenchOptions): Promise<{ file: string; report: string }> {
  if (process.getuid?.() !== 0) throw new Error('bench/handshake needs root (network namespaces)');
  const started = new Date();
  console.log(`IKEv2 handshake bench: K=${o.ks.join(',')} runs=${o.runs} scenarios=${o.scenarios.join(',')}`);
  const ceiling = cryptoCeiling(o.seconds);
  console.log(`crypto-only ceiling: ${f0(ceiling.perSecond)} handshakes/s (both peers, one core)`);
  const lab = await Lab.create({ label: 'bench-hs' });
  const results: RunResult[] = [];
  try {
    for (const k of o.ks) {
      for (let runNo = 0; runNo < o.runs; runNo++) {
        for (const sc of o.scenarios) {
          const fn = sc === 'coati' ? runCoati : sc === 'charon' ? runCharon : runMixed;
          let r: RunResult;
          try {
            r = await fn(lab, k, runNo, o);
          } catch (err) {
            console.log(`  ${NAMES[sc]} K=${k}: FAILED ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`);
            continue;
          }
          results.push(r);
          console.log(
            `  ${NAMES[sc].padEnd(15)} K=${String(k).padEnd(5)} ${r.ok ? 'ok' : 'INCOMPLETE'} wall ${f2(r.wallS)} s, ` +
              `${f0(r.perSecondWall)}/s wall, ${f0(r.perCpuSecond)} per CPU-s` +
              (r.note ? `\n    ${r.note.slice(0, 600)}` : ''),
          );
        }
      }
    }
  } finally {
    await lab.destroy().catch((e: Error) => console.error(e.message));
  }
  const summaries = summarize(results);
  const rs = ratios(summaries, ceiling.perSecond);
  const report = printReport(summaries, rs, ceiling);
  console.log(`\n${report}`);
  const charonVersion = (
    await run(['swanctl', '--version'], { allowFail: true }).catch(() => undefined)
  )?.stdout.trim();
  const stamp = started.toISOString().slice(0, 16).replace(':', '');
  const file = o.out ?? join(HERE, '..', '..', 'bench', 'results', `handshake-${stamp}.json`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        started: started.toISOString(),
        node: process.version,
        openssl: process.versions.openssl,
        charon: charonVersion,
        cpus: (await import('node:os')).cpus().map((c) => c.model)[0],
        ncpu: (await import('node:os')).cpus().length,
        options: { ...o },
        suite: 'IKEv2 PSK, X25519, AES-GCM-256, PRF HMAC-SHA-256; Child SA ESP AES-GCM-256 tunnel',
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

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  handshakeBench(parseArgs(process.argv.slice(2))).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
