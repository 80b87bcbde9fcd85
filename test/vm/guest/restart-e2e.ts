/**
 * Runs INSIDE the test VM (see test/vm/README.md, "restart tests"): real
 * `coatid` daemons with the xfrm backend restarted and crashed while UDP
 * streams run through their ESP SAs. Evidence for "restart and crash without
 * dropping traffic": every datagram of the stream is sequence-numbered, so a
 * lost one is a gap; a packet capture of the IKE ports shows whether an
 * IKE_SA_INIT was sent; `coatictl status --json`, the daemons' continuous
 * checkpoints and `ip xfrm state` show which IKE and Child SAs exist.
 *
 *   ca: eth0 192.0.2.1/24, protected subnet address 10.1.0.1 (on lo)
 *   cb: eth0 192.0.2.2/24, protected subnet address 10.2.0.1 (on lo)
 *   tunnel mode 10.1.0.0/24 <-> 10.2.0.0/24, IKEv2 PSK, AES-GCM, DPD 10 s/10 s,
 *   `shutdown = "keep"`; cb initiates (`start = "now"`), ca does not.
 *
 * Scenarios (one process, in this order):
 *   planned  N restarts of cb in a row: SIGTERM (exit 0) or `coatictl restart`
 *            (exit 75), alternately, then a new coatid. Two streams (ca->cb and
 *            cb->ca, one datagram every 15 ms each) run throughout.
 *   crash    M SIGKILLs of cb, each followed at once by a new coatid (continuous
 *            checkpoint, message ID resync).
 *   mesh     five namespaces (n1..n5, routed through a hub namespace), full mesh
 *            in transport mode; every node restarted in turn (SIGTERM + start)
 *            while five streams (ni -> n(i+1)) run.
 *
 * One line per scenario on stdout: `RESULT {"name":...,"ok":...,"detail":...}`;
 * test/vm/restart.test.ts asserts them. Daemon logs (ms stamps) go to
 * .cache/vm/restart-logs/, the IKE captures to the guest's /tmp.
 *
 *   probe    (opt-in, --dpd-probe) ca's DPD request in flight across a SIGKILL of cb.
 *
 *   node dist/test/vm/guest/restart-e2e.js --pkg-tar restart-pkg.tar --tools-tar restart-tools.tar
 *     [--restarts N] [--budget-s S] [--kills M] [--mesh] [--dpd-probe] [--dpd 60s/60s] [--log debug]
 *
 * --restarts N runs exactly N planned restarts; without it, as many as fit in
 * --budget-s seconds (default 90), at least 3.
 *
 * Shared pieces (staging, topology, configuration, daemons, status, kernel SAs,
 * streams, captures) are in pair-lib.ts.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ControlClient } from '../../../src/control/client.js';
import type { PeerStatus } from '../../../src/control/types.js';
import {
  arg,
  CACHE,
  Capture,
  copyResultsTo,
  countIke,
  type Daemon,
  type DaemonSettings,
  failureCount,
  type KSa,
  type PeerFile,
  pairTopology,
  peerOf,
  report,
  Stream,
  type StreamResult,
  settled,
  sh,
  sleep,
  stagePackage,
  startDaemon as start,
  status,
  stopDaemon,
  writeDaemonConfig,
  xfrmStates,
} from './pair-lib.js';

const LOGS = join(CACHE, 'restart-logs');
const WORK = '/tmp/coati-restart-e2e';
const PSK = 'coati-vm-restart-test-secret-0123456789';
const INTERVAL_MS = 15;
const LOG_LEVEL = arg('--log') ?? 'info';
/**
 * DPD delay/timeout. A coatid start takes 8-30 s in the TCG guest, so the
 * daemon is away longer than a typical DPD timeout; and the peer probes even
 * while ESP arrives (see test/vm/README.md, "restart tests"): 60 s/60 s.
 */
const DPD = (arg('--dpd') ?? '60s/60s').split('/') as [string, string];

/** The full results also go to the share (the harness removes its run folder afterwards). */
const RESULTS = join(CACHE, 'restart-results.jsonl');

// ---- daemons -----------------------------------------------------------------

/** A daemon with any number of peers (the pair, or a node of the mesh). */
interface Node extends Daemon {
  peers: PeerFile[];
  mode: 'transport' | 'tunnel';
}

function mkNode(name: string, addr: string, mode: Node['mode'], peers: PeerFile[]): Node {
  return { name, addr, peers, mode, dir: join(WORK, name), sock: join(WORK, name, 'coati.sock'), starts: 0 };
}

function writeConfig(n: Node): void {
  const s: DaemonSettings = {
    ikeProposals: 'aes256gcm16-prfsha256-x25519',
    espProposals: 'aes256gcm16-x25519',
    mode: n.mode,
    dpdDelay: DPD[0],
    dpdTimeout: DPD[1],
    dpdAction: 'restart',
    restartBackoffMax: '1s',
    retransmitBase: '500ms',
    shutdown: 'keep',
    log: LOG_LEVEL,
  };
  writeDaemonConfig(n, s, n.peers, PSK);
}

const startDaemon = (n: Node, tag: string) => start(n, tag, LOGS);

/** Every configured pair among `nodes` settled; returns the ms waited. */
async function waitMeshSettled(nodes: Node[], ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const reports = new Map(await Promise.all(nodes.map(async (n) => [n.name, await status(n)] as const)));
    const ok = nodes.every((n) =>
      n.peers.every((p) => settled(peerOf(reports.get(n.name), p.name), peerOf(reports.get(p.name), n.name))),
    );
    if (ok) return Date.now() - t0;
    await sleep(100);
  }
  throw new Error(`not every pair settled within ${ms} ms`);
}

/** A pair's IKE SPIs, Child SPIs and message IDs as one side reports them. */
interface PairView {
  ike: string;
  child: string;
  msgOut: number;
  msgIn: number;
}
function view(p: PeerStatus | undefined): PairView | undefined {
  if (!p?.ike) return undefined;
  const c = p.children.filter((x) => x.state === 'installed');
  return {
    ike: `${p.ike.spiI}_i/${p.ike.spiR}_r`,
    child: c.map((x) => `${x.spiIn}/${x.spiOut}`).join(','),
    msgOut: p.ike.messageIdOut,
    msgIn: p.ike.messageIdIn,
  };
}

/** IKE SAs in a daemon's continuous checkpoint (written <= 200 ms after each change): duplicates show here. */
function checkpointIkeSas(n: Node): { kind?: string; ikeSas: string[] } {
  try {
    const cp = JSON.parse(readFileSync(join(n.dir, 'state', 'checkpoint.json'), 'utf8')) as {
      kind: string;
      ikeSas: { spiI: string; spiR: string; peer: string | null }[];
    };
    return { kind: cp.kind, ikeSas: cp.ikeSas.map((s) => `${s.peer}:${s.spiI}_i/${s.spiR}_r`) };
  } catch {
    return { ikeSas: [] };
  }
}

// ---- IKE packet capture --------------------------------------------------------

/** udp/500 and udp/4500 on one namespace's eth0 (the host's dumpcap or tcpdump, from the tools tarball). */
function ikeCapture(ns: string, tag: string) {
  const c = new Capture(ns, `restart-${tag}`, 'udp port 500 or udp port 4500');
  return { start: () => c.start(), stop: async () => countIke(await c.stop()) };
}

// ---- the pair ------------------------------------------------------------------

const A = mkNode('ca', '192.0.2.1', 'tunnel', [
  { name: 'cb', address: '192.0.2.2', start: 'none', localTs: '10.1.0.0/24', remoteTs: '10.2.0.0/24' },
]);
const B = mkNode('cb', '192.0.2.2', 'tunnel', [
  { name: 'ca', address: '192.0.2.1', start: 'now', localTs: '10.2.0.0/24', remoteTs: '10.1.0.0/24' },
]);

/** Both streams through the tunnel, one datagram every 15 ms each. */
const pairStreams = () => [
  new Stream('ca->cb', 'ca', '10.1.0.1', 'cb', '10.2.0.1', 7001, INTERVAL_MS),
  new Stream('cb->ca', 'cb', '10.2.0.1', 'ca', '10.1.0.1', 7002, INTERVAL_MS),
];

/** What both sides, both kernels and both checkpoints say about the ca-cb relationship now. */
async function pairSnapshot() {
  const [sa, sb, ka, kb] = await Promise.all([status(A), status(B), xfrmStates('ca'), xfrmStates('cb')]);
  return {
    ca: view(peerOf(sa, 'cb')),
    cb: view(peerOf(sb, 'ca')),
    settled: settled(peerOf(sa, 'cb'), peerOf(sb, 'ca')),
    kernel: { ca: ka, cb: kb },
    checkpoint: { ca: checkpointIkeSas(A), cb: checkpointIkeSas(B) },
  };
}

const outSa = (k: KSa[], dst: string) => k.find((s) => s.dst === dst);

/**
 * The pair scenarios: `planned` (SIGTERM / coatictl restart with handover) or
 * `crash` (SIGKILL, continuous checkpoint). cb is restarted `count` times (or,
 * with `budgetMs`, as often as fits) while both streams run.
 */
async function pairScenario(kind: 'planned' | 'crash', count: number, budgetMs: number | undefined): Promise<void> {
  const name = kind === 'planned' ? 'planned restarts' : 'SIGKILL + restart';
  const t0 = Date.now();
  const streams: Stream[] = [];
  let capture: ReturnType<typeof ikeCapture> | undefined;
  try {
    if (!B.proc || B.proc.exitCode !== null || B.proc.signalCode !== null) throw new Error('cb is not running');
    await waitMeshSettled([A, B], 60_000);
    const before = await pairSnapshot();
    if (Capture.available()) {
      capture = ikeCapture('ca', kind);
      await capture.start();
    }
    streams.push(...pairStreams());
    for (const s of streams) s.start();
    await sleep(1000);
    const cycles: Record<string, unknown>[] = [];
    const problems: string[] = [];
    const loopStart = Date.now();
    for (let i = 0; i < count || (budgetMs !== undefined && Date.now() - loopStart < budgetMs); i++) {
      const how = kind === 'crash' ? 'SIGKILL' : i % 2 === 0 ? 'SIGTERM' : 'coatictl restart';
      const prev = await pairSnapshot();
      const stopAt = Date.now();
      const exit = await stopDaemon(B, how, 15_000);
      const exitedMs = Date.now() - stopAt;
      const cp = checkpointIkeSas(B);
      startDaemon(B, kind);
      // Back: the new process answers status with the pair settled.
      let back = -1;
      let now = prev;
      while (Date.now() - stopAt < 60_000) {
        now = await pairSnapshot();
        if (now.settled) {
          back = Date.now() - stopAt;
          break;
        }
        await sleep(100);
      }
      const want = kind === 'crash' ? 'SIGKILL' : how === 'SIGTERM' ? 0 : 75;
      const c = {
        i: i + 1,
        how,
        exit,
        exitedMs,
        downToSettledMs: back,
        checkpointAtExit: cp.kind,
        ike: now.cb?.ike,
        child: now.cb?.child,
        msgIds: { before: prev.cb && [prev.cb.msgOut, prev.cb.msgIn], after: now.cb && [now.cb.msgOut, now.cb.msgIn] },
        sentSoFar: streams.map((s) => s.sent),
      };
      cycles.push(c);
      if (exit !== want) problems.push(`cycle ${i + 1}: ${how} exit ${exit}, expected ${want}`);
      if (back < 0) {
        problems.push(`cycle ${i + 1}: not settled within 60 s after ${how}`);
        break;
      }
      if (kind === 'planned' && cp.kind !== 'handover')
        problems.push(`cycle ${i + 1}: checkpoint at exit is ${cp.kind ?? 'missing'}, expected handover`);
      if (now.cb?.ike !== before.cb?.ike) problems.push(`cycle ${i + 1}: IKE SA ${before.cb?.ike} -> ${now.cb?.ike}`);
      if (now.cb?.child !== before.cb?.child)
        problems.push(`cycle ${i + 1}: Child SA ${before.cb?.child} -> ${now.cb?.child}`);
      if (kind === 'planned' && now.cb && prev.cb && (now.cb.msgOut < prev.cb.msgOut || now.cb.msgIn < prev.cb.msgIn))
        problems.push(`cycle ${i + 1}: message IDs went back ${JSON.stringify(c.msgIds)}`);
      if (budgetMs === undefined && i + 1 >= count) break;
    }
    const restartsMs = Date.now() - loopStart;
    // Let anything a restart set off (duplicate IKE SAs, DPD, stale-SA reaping) run its course.
    await sleep(3000);
    const sentDuring = streams.map((s) => s.sent);
    const results: StreamResult[] = [];
    for (const s of streams) results.push(await s.stop());
    streams.length = 0;
    const ike = capture ? await capture.stop() : undefined;
    capture = undefined;
    const after = await pairSnapshot();
    const k = after.kernel;
    if (k.ca.length !== 2 || k.cb.length !== 2)
      problems.push(`ESP SAs per namespace: ca ${k.ca.length}, cb ${k.cb.length} (want 2)`);
    if (after.checkpoint.ca.ikeSas.length !== 1 || after.checkpoint.cb.ikeSas.length !== 1)
      problems.push(`IKE SAs in the checkpoints: ${JSON.stringify(after.checkpoint)} (want one per side)`);
    if (!after.settled || after.ca?.ike !== before.ca?.ike || after.cb?.child !== before.cb?.child)
      problems.push(
        `SAs changed: before ${JSON.stringify([before.ca, before.cb])} after ${JSON.stringify([after.ca, after.cb])}`,
      );
    // Every datagram went through ESP: the outbound SAs (unchanged SPIs) counted at least the stream.
    const pktDelta = (side: 'ca' | 'cb', dst: string) =>
      (outSa(after.kernel[side], dst)?.packets ?? 0) - (outSa(before.kernel[side], dst)?.packets ?? 0);
    const esp = { 'ca->cb': pktDelta('ca', B.addr), 'cb->ca': pktDelta('cb', A.addr) };
    if (esp['ca->cb'] < (sentDuring[0] ?? 0) || esp['cb->ca'] < (sentDuring[1] ?? 0))
      problems.push(`ESP counters below the datagrams sent: ${JSON.stringify(esp)} vs ${sentDuring}`);
    for (const r of results) if (r.lost > 0) problems.push(`${r.name}: lost ${r.lost} of ${r.sent}`);
    if (ike && ike.ikeSaInit > 0) problems.push(`${ike.ikeSaInit} IKE_SA_INIT messages on the wire`);
    report(name, problems.length === 0, {
      problems,
      restarts: cycles.length,
      restartsMs,
      streams: results,
      espPacketsCounted: esp,
      ikeCapture: ike ?? 'no capture tool',
      dpd: DPD,
      guestClockAtEnd: new Date().toISOString(),
      before: { ca: before.ca, cb: before.cb, kernel: before.kernel },
      after: { ca: after.ca, cb: after.cb, kernel: after.kernel, checkpoint: after.checkpoint },
      cycles,
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      streams: await Promise.all(streams.map((s) => s.stop())),
      ikeCapture: await capture?.stop().catch((e) => String(e)),
      ms: Date.now() - t0,
    });
  }
}

/**
 * Opt-in (--dpd-probe): ca's DPD liveness request is in flight while cb is
 * SIGKILLed and restarted (continuous checkpoint, RFC 6311 message ID sync).
 * A live peer must not be declared dead: the same SAs must survive the probe's
 * whole timeout, with no datagram lost and no IKE_SA_INIT.
 */
async function probeAcrossCrash(): Promise<void> {
  const name = 'DPD probe in flight across a SIGKILL';
  const t0 = Date.now();
  const streams: Stream[] = [];
  let capture: ReturnType<typeof ikeCapture> | undefined;
  try {
    await waitMeshSettled([A, B], 60_000);
    const before = await pairSnapshot();
    if (Capture.available()) {
      capture = ikeCapture('ca', 'probe');
      await capture.start();
    }
    streams.push(...pairStreams());
    for (const s of streams) s.start();
    // An exchange initiated by cb moves the message IDs: its continuous checkpoint (not a
    // handover one left by an earlier planned restart) is what the crashed cb restores, with
    // inexact IDs, so it re-synchronises them (RFC 6311) while ca's probe is pending.
    const own = await ControlClient.connect(B.sock, { timeoutMs: 30_000 });
    const ownProbe = await own.request('dpd', { peer: 'ca' });
    own.close();
    await sleep(1000);
    const cpBeforeKill = checkpointIkeSas(B).kind;
    await stopDaemon(B, 'SIGKILL', 15_000);
    // The probe goes out while cb is away; its answer (or the verdict) comes after the DPD timeout.
    const client = await ControlClient.connect(A.sock, { timeoutMs: 300_000 });
    const probeAt = Date.now();
    const verdict = client.request('dpd', { peer: 'cb' }).then(
      (r) => ({ ms: Date.now() - probeAt, result: r as unknown }),
      (e) => ({ ms: Date.now() - probeAt, result: String(e) }),
    );
    await sleep(500);
    startDaemon(B, 'probe');
    const timeoutMs = Number.parseInt(DPD[1], 10) * 1000;
    const answered = await Promise.race([verdict, sleep(timeoutMs + 10_000).then(() => undefined)]);
    client.close();
    await sleep(2000);
    const results: StreamResult[] = [];
    for (const s of streams) results.push(await s.stop());
    streams.length = 0;
    const ike = capture ? await capture.stop() : undefined;
    capture = undefined;
    const after = await pairSnapshot();
    const problems: string[] = [];
    if (!after.settled || after.ca?.ike !== before.ca?.ike || after.cb?.child !== before.cb?.child)
      problems.push(
        `SAs changed: before ${JSON.stringify([before.ca, before.cb])} after ${JSON.stringify([after.ca, after.cb])}`,
      );
    if (after.kernel.ca.length !== 2 || after.kernel.cb.length !== 2)
      problems.push(`ESP SAs per namespace: ca ${after.kernel.ca.length}, cb ${after.kernel.cb.length} (want 2)`);
    for (const r of results) if (r.lost > 0) problems.push(`${r.name}: lost ${r.lost} of ${r.sent}`);
    if (ike && ike.ikeSaInit > 0) problems.push(`${ike.ikeSaInit} IKE_SA_INIT messages on the wire`);
    report(name, problems.length === 0, {
      problems,
      probe: answered ?? 'no verdict within the DPD timeout + 10 s',
      cbProbeFirst: ownProbe,
      cbCheckpointAtKill: cpBeforeKill,
      streams: results,
      ikeCapture: ike ?? 'no capture tool',
      before: { ca: before.ca, cb: before.cb },
      after: { ca: after.ca, cb: after.cb, kernel: after.kernel, checkpoint: after.checkpoint },
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      streams: await Promise.all(streams.map((s) => s.stop())),
      ikeCapture: await capture?.stop().catch((e) => String(e)),
      ms: Date.now() - t0,
    });
  }
}

// ---- mesh --------------------------------------------------------------------

const MESH = [1, 2, 3, 4, 5].map((i) => `n${i}`);
const meshAddr = (i: number) => `10.0.${i}.2`;

async function meshTopology(): Promise<Node[]> {
  let script = 'set -e\nip netns del hub 2>/dev/null || true\nip netns add hub\nip -n hub link set lo up\n';
  script += "ip netns exec hub bash -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'\n";
  for (let i = 1; i <= 5; i++) {
    script += `ip netns del n${i} 2>/dev/null || true
ip netns add n${i}
ip link add eth0 netns n${i} type veth peer name p${i} netns hub
ip -n n${i} link set lo up
ip -n n${i} addr add ${meshAddr(i)}/24 dev eth0
ip -n n${i} link set eth0 up
ip -n n${i} route add default via 10.0.${i}.1
ip -n hub addr add 10.0.${i}.1/24 dev p${i}
ip -n hub link set p${i} up
`;
  }
  await sh(script);
  return MESH.map((name, k) => {
    const i = k + 1;
    // The higher-numbered node of each pair initiates: no crossing streams at start-up.
    const peers = MESH.filter((p) => p !== name).map((p) => {
      const j = Number(p.slice(1));
      return { name: p, address: meshAddr(j), start: i > j ? 'now' : 'none' } as PeerFile;
    });
    return mkNode(name, meshAddr(i), 'transport', peers);
  });
}

async function meshScenario(): Promise<void> {
  const name = 'mesh rolling restart';
  const t0 = Date.now();
  const streams: Stream[] = [];
  let nodes: Node[] = [];
  try {
    nodes = await meshTopology();
    for (const n of nodes) writeConfig(n);
    for (const n of nodes) startDaemon(n, 'mesh');
    const upMs = await waitMeshSettled(nodes, 180_000);
    const spis = async () => {
      const m: Record<string, string | undefined> = {};
      for (const n of nodes) {
        const r = await status(n);
        for (const p of n.peers)
          m[`${n.name}-${p.name}`] = `${view(peerOf(r, p.name))?.ike} ${view(peerOf(r, p.name))?.child}`;
      }
      return m;
    };
    const before = await spis();
    for (let i = 1; i <= 5; i++) {
      const j = (i % 5) + 1;
      streams.push(new Stream(`n${i}->n${j}`, `n${i}`, meshAddr(i), `n${j}`, meshAddr(j), 7100 + i));
    }
    for (const s of streams) s.start();
    await sleep(1000);
    const problems: string[] = [];
    const cycles: Record<string, unknown>[] = [];
    const rollStart = Date.now();
    for (const n of nodes) {
      const at = Date.now();
      const exit = await stopDaemon(n, 'SIGTERM', 15_000);
      startDaemon(n, 'mesh');
      let back = -1;
      try {
        await waitMeshSettled(nodes, 90_000);
        back = Date.now() - at;
      } catch {
        problems.push(`${n.name}: the mesh did not settle after its restart`);
      }
      cycles.push({ node: n.name, exit, downToSettledMs: back });
      if (exit !== 0) problems.push(`${n.name}: SIGTERM exit ${exit}`);
      if (back < 0) break;
    }
    const rollMs = Date.now() - rollStart;
    await sleep(3000);
    const results: StreamResult[] = [];
    for (const s of streams) results.push(await s.stop());
    streams.length = 0;
    const after = await spis();
    for (const [pair, v] of Object.entries(before))
      if (after[pair] !== v) problems.push(`${pair}: ${v} -> ${after[pair]}`);
    const espCounts: Record<string, number> = {};
    for (const n of nodes) {
      const k = await xfrmStates(n.name);
      espCounts[n.name] = k.length;
      if (k.length !== 8) problems.push(`${n.name}: ${k.length} ESP SAs (want 8: 4 peers x in/out)`);
      const cp = checkpointIkeSas(n);
      if (cp.ikeSas.length !== 4) problems.push(`${n.name}: ${cp.ikeSas.length} IKE SAs in its checkpoint (want 4)`);
    }
    for (const r of results) if (r.lost > 0) problems.push(`${r.name}: lost ${r.lost} of ${r.sent}`);
    report(name, problems.length === 0, {
      problems,
      nodes: nodes.length,
      pairs: 10,
      upMs,
      rollMs,
      cycles,
      streams: results,
      espSasPerNode: espCounts,
      ms: Date.now() - t0,
    });
  } catch (err) {
    report(name, false, {
      error: String((err as Error).stack ?? err),
      streams: await Promise.all(streams.map((s) => s.stop())),
      ms: Date.now() - t0,
    });
  } finally {
    await Promise.all(nodes.map((n) => stopDaemon(n, 'SIGKILL', 15_000)));
    await sh(`for ns in hub ${MESH.join(' ')}; do ip netns del $ns 2>/dev/null; done; true`);
  }
}

async function main(): Promise<void> {
  const restarts = arg('--restarts');
  const budgetS = Number(arg('--budget-s') ?? 90);
  const kills = Number(arg('--kills') ?? 3);
  try {
    rmSync(LOGS, { recursive: true, force: true });
    copyResultsTo(RESULTS);
    await stagePackage(arg('--pkg-tar'), arg('--tools-tar'));
    await pairTopology();
    for (const n of [A, B]) writeConfig(n);
    for (const n of [A, B]) startDaemon(n, 'start');
    const upMs = await waitMeshSettled([A, B], 90_000);
    process.stdout.write(`pair up in ${upMs} ms; capture tool: ${Capture.available() ?? 'none'}\n`);
  } catch (err) {
    report('setup', false, { error: String((err as Error).stack ?? err) });
    process.exit(1);
  }
  if (restarts) await pairScenario('planned', Number(restarts), undefined);
  else await pairScenario('planned', 3, budgetS * 1000);
  if (kills > 0) await pairScenario('crash', kills, undefined);
  if (process.argv.includes('--dpd-probe')) await probeAcrossCrash();
  for (const n of [A, B]) await stopDaemon(n, 'SIGKILL', 15_000);
  await sh('ip netns del ca; ip netns del cb').catch(() => '');
  if (process.argv.includes('--mesh')) await meshScenario();
  process.exit(failureCount() ? 1 : 0);
}

void main();
