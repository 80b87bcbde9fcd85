/**
 * The process side of the handshake benches: one coati engine (IKEv1 or IKEv2
 * manager) in its own process with real UDP sockets (500 and 4500, opened
 * inside a network namespace by the native addon), a MemoryKernel and the
 * system clock. Forked by bench/handshake-harness.ts with `--expose-gc`;
 * driven over the IPC channel:
 *
 *   parent -> { type: 'setup', ... }   child -> { type: 'ready', mem }
 *   parent -> { type: 'warmup' }       (setup.warmup > 0: the initiator initiates SAs k .. k+warmup-1,
 *                                      k at a time, each batch once the previous one is up)
 *   child  -> { type: 'warm', ... }    when this side has completed the warm-up's handshakes
 *   parent -> { type: 'cooldown' }     (the initiator removes the warm-up's peers, deleting their SAs)
 *   child  -> { type: 'cool', ... }    once this side holds no SA (engine and kernel) and has removed
 *                                      the warm-up's peers too; counters reset
 *   parent -> { type: 'start' }        (snapshot CPU; the initiator also initiates all K SAs)
 *   child  -> { type: 'done', ... }    when K handshakes are complete (or the deadline passed)
 *   parent -> { type: 'stats' }        child -> { type: 'stats', mem, counters }
 *   parent -> { type: 'exit' }
 *
 * bench/handshake-peer.ts and bench/handshake-v1-peer.ts only say which engine
 * to build, with which policies, and which events count.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { defaultRandom } from '../src/crypto/random.js';
import type { Endpoint, EngineEnv, EngineEvent, OutboundDatagram } from '../src/ikev2/env.js';
import { MemoryKernel } from '../src/kernel/memory/memory-kernel.js';
import { IkeUdpSocket } from '../src/net/udp-socket.js';
import { type Identity, parseIdentity } from '../src/sa/identity.js';
import type { PeerPolicy } from '../src/sa/policy.js';
import { parseTrafficSelector, type TrafficSelector } from '../src/sa/traffic-selector.js';
import { systemClock } from '../src/util/clock.js';
import { applyDaemonV8Flags } from '../src/util/v8-flags.js';
import {
  initiatorId,
  type MemSample,
  type PeerCool,
  type PeerDone,
  type PeerSetup,
  type PeerWarm,
  responderId,
  tsHost,
} from './handshake-common.js';

/** What the harness needs of an IKEv1 or IKEv2 manager. */
export interface PeerEngine {
  setPeer(p: PeerPolicy): void;
  receive(payload: Buffer, remote: Endpoint, local: Endpoint): void;
  initiate(name: string): Promise<unknown>;
  /** Deletes the peer's SAs (through the peer) and forgets the peer. */
  removePeer(name: string): Promise<unknown>;
  allSas(): readonly unknown[];
  close(o: { keepKernel: boolean }): Promise<unknown>;
}

/** Counters every peer keeps; a peer may add its own (sent along in `done` and `stats`). */
export interface PeerCounters {
  established: number;
  childFailures: number;
  failures: number;
  retransmits: number;
  drops: number;
}

/** The parts of SA i's policy that are the same in both benches. */
export interface BenchPolicyParts {
  /** Local and remote endpoint; the remote is named after the peer (`r${i}` on the initiator, `i${i}` on the responder). */
  local: { name: string; addr: string };
  remote: { name: string; addr: string };
  ike: {
    localId: Identity;
    remoteId: Identity;
    auth: { kind: 'psk'; secret: Buffer };
    dpdAction: 'clear';
    start: 'none';
  };
  child: { name: string; mode: 'tunnel'; localTs: TrafficSelector[]; remoteTs: TrafficSelector[] };
}

export interface PeerSpec<C extends PeerCounters> {
  counters: C;
  engine(env: EngineEnv): PeerEngine;
  /** SA i's policy: `parts` plus the engine's own proposals. */
  policy(parts: BenchPolicyParts): PeerPolicy;
  /**
   * Counts an engine event beyond the ones every peer counts (handshake.failed,
   * child.failed, retransmit, packet.dropped); returns true when it completed a
   * handshake (`established` was bumped).
   */
  count(ev: EngineEvent, counters: C): boolean;
  /** Datagrams not to put on the wire (e.g. IKEv1 NAT keepalives). */
  skip?(d: OutboundDatagram): boolean;
}

function mem(): MemSample {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

/**
 * Policies of the K measured SAs, the warm-up's and the idle peers: identities,
 * PSK and per-SA tunnel selectors shared with the charon configs.
 */
function policies<C extends PeerCounters>(spec: PeerSpec<C>, s: PeerSetup): PeerPolicy[] {
  const ini = s.role === 'initiator';
  return Array.from({ length: s.k + s.warmup + s.idle }, (_, i) =>
    spec.policy({
      local: { name: 'x', addr: s.localAddr },
      remote: { name: ini ? `r${i}` : `i${i}`, addr: s.remoteAddr },
      ike: {
        localId: parseIdentity(ini ? initiatorId(i) : responderId),
        remoteId: parseIdentity(ini ? responderId : initiatorId(i)),
        auth: { kind: 'psk', secret: Buffer.from(s.psk) },
        dpdAction: 'clear',
        start: 'none',
      },
      child: {
        name: 'c',
        mode: 'tunnel',
        localTs: [parseTrafficSelector(tsHost(s.localNet, i))],
        remoteTs: [parseTrafficSelector(tsHost(s.remoteNet, i))],
      },
    }),
  );
}

/** Names of the warm-up's peers (SAs k .. k+warmup-1) on this side. */
const warmupPeers = (s: PeerSetup): string[] =>
  Array.from({ length: s.warmup }, (_, i) => `${s.role === 'initiator' ? 'r' : 'i'}${s.k + i}`);

/** Counts the events every peer counts alike. */
function countCommon(ev: EngineEvent, c: PeerCounters): void {
  switch (ev.type) {
    case 'handshake.failed':
      c.failures++;
      break;
    case 'child.failed':
      c.childFailures++;
      break;
    case 'retransmit':
      c.retransmits++;
      break;
    case 'packet.dropped':
      c.drops++;
      break;
  }
}

const send = (msg: unknown) => process.send?.(msg);
const NON_ESP = Buffer.alloc(4);

/** Runs this process as a bench peer until the parent sends `exit`. */
export function runPeer<C extends PeerCounters>(spec: PeerSpec<C>): void {
  applyDaemonV8Flags(); // run the engine as coatid runs it
  const counters = spec.counters;
  const sockets = new Map<number, IkeUdpSocket>();
  let setup: PeerSetup | undefined;
  let manager: PeerEngine | undefined;
  let kernel: MemoryKernel | undefined;
  let startAt = 0;
  let cpuStart: NodeJS.CpuUsage = { user: 0, system: 0 };
  let finished = false;
  let deadline: NodeJS.Timeout | undefined;
  let windowProfs: ReturnType<typeof startWindowProfiler>[] = [];
  /** The warm-up in progress: how many handshakes complete it; the initiator's wait for its current batch. */
  let warming: { target: number; timer: NodeJS.Timeout; batch?: { upTo: number; done: () => void } } | undefined;

  /** The initiator's warm-up: batches of k initiations, each started once the previous one is complete. */
  const warmupBatches = async (mgr: PeerEngine, s: PeerSetup): Promise<void> => {
    for (let from = 0; from < s.warmup && warming; from += s.k) {
      const upTo = Math.min(from + s.k, s.warmup);
      const w = warming;
      const batchDone = new Promise<void>((r) => {
        w.batch = { upTo, done: r };
      });
      void initiateAll(mgr, s.k + from, s.k + upTo);
      await batchDone;
    }
  };

  const warmed = (timedOut: boolean): void => {
    if (!warming) return;
    clearTimeout(warming.timer);
    warming.batch?.done();
    warming = undefined;
    const w: PeerWarm = {
      type: 'warm',
      established: counters.established,
      failures: counters.failures,
      retransmits: counters.retransmits,
      timedOut,
    };
    send(w);
  };

  /**
   * The initiator removes the warm-up's peers, which deletes their SAs through the
   * responder. Each side then waits (polling) until it holds no SA, or the deadline;
   * the responder removes its warm-up peers only then, so it sends no Deletes of its
   * own. Then the counters are reset and `cool` answered.
   */
  const cooldown = async (mgr: PeerEngine, k: MemoryKernel, s: PeerSetup): Promise<void> => {
    const removeWarmupPeers = () =>
      Promise.all(
        warmupPeers(s).map((name) =>
          mgr.removePeer(name).catch((err) => {
            process.stderr.write(`[${s.role}] remove ${name}: ${(err as Error).message}\n`);
          }),
        ),
      );
    if (s.role === 'initiator') await removeWarmupPeers();
    const until = performance.now() + s.deadlineMs;
    while ((mgr.allSas().length > 0 || (await k.listSas()).length > 0) && performance.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    if (s.role === 'responder') await removeWarmupPeers();
    for (const key of Object.keys(counters) as (keyof C)[]) (counters[key] as number) = 0;
    const c: PeerCool = { type: 'cool', sas: mgr.allSas().length, kernelSas: (await k.listSas()).length, mem: mem() };
    send(c);
  };

  const finish = async (timedOut: boolean): Promise<void> => {
    if (finished || !setup) return;
    finished = true;
    const elapsedMs = performance.now() - startAt;
    const cpu = process.cpuUsage(cpuStart);
    for (const p of windowProfs) await p.stop(setup.role);
    if (deadline) clearTimeout(deadline);
    const done: PeerDone = {
      type: 'done',
      role: setup.role,
      ...counters,
      elapsedMs,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      kernelSas: kernel ? (await kernel.listSas()).length : 0,
      timedOut,
    };
    send(done);
  };

  const onEvent = (ev: EngineEvent): void => {
    countCommon(ev, counters);
    if (!spec.count(ev, counters) || !setup) return;
    if (warming) {
      if (warming.batch && counters.established >= warming.batch.upTo) warming.batch.done();
      if (counters.established >= warming.target) warmed(false);
    } else if (counters.established >= setup.k) void finish(false);
  };

  const openSockets = (s: PeerSetup, mgr: PeerEngine): void => {
    for (const port of [500, 4500]) {
      const sock = IkeUdpSocket.open({
        family: 4,
        port,
        bindAddress: s.localAddr,
        netns: s.netns,
        onMessage: (d) => {
          let payload = d.payload;
          if (port === 4500) {
            // Non-ESP marker: IKE; anything else (keepalive 0xff, ESP) is not ours here.
            if (payload.length < 4 || payload.readUInt32BE(0) !== 0) return;
            payload = payload.subarray(4);
          }
          mgr.receive(payload, { addr: d.remoteAddr, port: d.remotePort }, { addr: s.localAddr, port });
        },
        onError: (err) => process.stderr.write(`[${s.role}] socket: ${err.message}\n`),
      });
      sockets.set(port, sock);
    }
  };

  const sendDatagram = (d: OutboundDatagram): void => {
    if (spec.skip?.(d)) return;
    const sock = sockets.get(d.local.port === 4500 ? 4500 : 500);
    if (!sock) return;
    const data = d.local.port === 4500 ? Buffer.concat([NON_ESP, d.data]) : d.data;
    try {
      sock.send(data, d.remote.addr, d.remote.port);
    } catch (err) {
      process.stderr.write(`[${setup?.role}] send: ${(err as Error).message}\n`);
    }
  };

  /**
   * Starts all K initiations without waiting for any to complete, yielding to the
   * event loop every few so responses already received are read off the socket
   * (a single synchronous loop over K would overflow the socket's receive buffer).
   */
  const initiateAll = async (mgr: PeerEngine, from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      mgr.initiate(`r${i}`).catch((err) => {
        counters.failures++;
        process.stderr.write(`[initiator] initiate r${i}: ${(err as Error).message}\n`);
      });
      if ((i - from) % 8 === 7) await new Promise<void>((r) => setImmediate(r));
    }
  };

  process.on('message', (msg: { type: string }) => {
    switch (msg.type) {
      case 'setup': {
        setup = msg as unknown as PeerSetup;
        const s = setup;
        kernel = new MemoryKernel({ now: () => Date.now() });
        const mgr = spec.engine({
          clock: systemClock,
          random: defaultRandom, // what coatid's composition root passes
          rand01: Math.random,
          kernel,
          send: sendDatagram,
          emit: onEvent,
          log: {
            debug() {},
            info() {},
            warn() {},
            error: (m, f) => process.stderr.write(`[${s.role}] ${m} ${JSON.stringify(f ?? {})}\n`),
          },
          sourceFor: async () => s.localAddr,
        });
        manager = mgr;
        for (const p of policies(spec, s)) mgr.setPeer(p);
        openSockets(s, mgr);
        send({ type: 'ready', mem: mem() });
        break;
      }
      case 'start': {
        if (!setup || !manager) return;
        const s = setup;
        const mgr = manager;
        windowProfs = [];
        if (process.env.COATI_BENCH_HEAPPROF)
          windowProfs.push(startWindowProfiler('heap', process.env.COATI_BENCH_HEAPPROF));
        if (process.env.COATI_BENCH_CPUPROF)
          windowProfs.push(startWindowProfiler('cpu', process.env.COATI_BENCH_CPUPROF));
        cpuStart = process.cpuUsage();
        startAt = performance.now();
        deadline = setTimeout(() => void finish(true), s.deadlineMs);
        if (s.role === 'initiator') void initiateAll(mgr, 0, s.k);
        break;
      }
      case 'warmup': {
        if (!setup || !manager || setup.warmup <= 0) return;
        const s = setup;
        // The deadline holds for each batch.
        const batches = Math.ceil(s.warmup / s.k);
        warming = { target: s.warmup, timer: setTimeout(() => warmed(true), s.deadlineMs * batches) };
        if (s.role === 'initiator') void warmupBatches(manager, s);
        break;
      }
      case 'cooldown': {
        if (!setup || !manager || !kernel) return;
        void cooldown(manager, kernel, setup);
        break;
      }
      case 'stats':
        send({ type: 'stats', mem: mem(), counters, sas: manager?.allSas().length ?? 0 });
        break;
      case 'exit':
        for (const sock of sockets.values()) sock.close();
        void manager?.close({ keepKernel: true }).finally(() => process.exit(0));
        setTimeout(() => process.exit(0), 2000).unref();
        break;
    }
  });
}

/**
 * Profilers over the measured window only (the whole-process `--profile` also holds
 * start-up, the warm-up and its cooldown):
 * - COATI_BENCH_HEAPPROF=<dir>: allocation sampling, every sampled allocation including
 *   what the young and old generation GCs collected, so the profile shows where the
 *   garbage comes from. Written as <dir>/<role>.heapprofile.
 * - COATI_BENCH_CPUPROF=<dir>: CPU sampling every 100 µs. Written as
 *   <dir>/<role>.cpuprofile (read it with bench/profile-summary.ts).
 */
function startWindowProfiler(kind: 'heap' | 'cpu', dir: string): { stop(role: string): Promise<void> } {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((res, rej) => session.post(method, params ?? {}, (err, r) => (err ? rej(err) : res(r))));
  const started =
    kind === 'heap'
      ? post('HeapProfiler.startSampling', {
          samplingInterval: 1024,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        })
      : post('Profiler.enable')
          .then(() => post('Profiler.setSamplingInterval', { interval: 100 }))
          .then(() => post('Profiler.start'));
  return {
    async stop(role) {
      await started;
      const r = (await post(kind === 'heap' ? 'HeapProfiler.stopSampling' : 'Profiler.stop')) as { profile: unknown };
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${role}.${kind === 'heap' ? 'heapprofile' : 'cpuprofile'}`), JSON.stringify(r.profile));
      session.disconnect();
    },
  };
}
