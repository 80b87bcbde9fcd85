/**
 * The process side of the handshake benches: one coati engine (IKEv1 or IKEv2
 * manager) in its own process with real UDP sockets (500 and 4500, opened
 * inside a network namespace by the native addon), a MemoryKernel and the
 * system clock. Forked by bench/handshake-harness.ts with `--expose-gc`;
 * driven over the IPC channel:
 *
 *   parent -> { type: 'setup', ... }   child -> { type: 'ready', mem }
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
import { initiatorId, type MemSample, type PeerDone, type PeerSetup, responderId, tsHost } from './handshake-common.js';

/** What the harness needs of an IKEv1 or IKEv2 manager. */
export interface PeerEngine {
  setPeer(p: PeerPolicy): void;
  receive(payload: Buffer, remote: Endpoint, local: Endpoint): void;
  initiate(name: string): Promise<unknown>;
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

/** Policies of the K SAs: identities, PSK and per-SA tunnel selectors shared with the charon configs. */
function policies<C extends PeerCounters>(spec: PeerSpec<C>, s: PeerSetup): PeerPolicy[] {
  const ini = s.role === 'initiator';
  return Array.from({ length: s.k }, (_, i) =>
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
  const counters = spec.counters;
  const sockets = new Map<number, IkeUdpSocket>();
  let setup: PeerSetup | undefined;
  let manager: PeerEngine | undefined;
  let kernel: MemoryKernel | undefined;
  let startAt = 0;
  let cpuStart: NodeJS.CpuUsage = { user: 0, system: 0 };
  let finished = false;
  let deadline: NodeJS.Timeout | undefined;
  let heapProf: ReturnType<typeof startHeapSampling> | undefined;

  const finish = async (timedOut: boolean): Promise<void> => {
    if (finished || !setup) return;
    finished = true;
    const elapsedMs = performance.now() - startAt;
    const cpu = process.cpuUsage(cpuStart);
    if (heapProf) await heapProf.stop(setup.role);
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
    if (spec.count(ev, counters) && setup && counters.established >= setup.k) void finish(false);
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
  const initiateAll = async (s: PeerSetup, mgr: PeerEngine): Promise<void> => {
    for (let i = 0; i < s.k; i++) {
      mgr.initiate(`r${i}`).catch((err) => {
        counters.failures++;
        process.stderr.write(`[initiator] initiate r${i}: ${(err as Error).message}\n`);
      });
      if (i % 8 === 7) await new Promise<void>((r) => setImmediate(r));
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
        if (process.env.COATI_BENCH_HEAPPROF) heapProf = startHeapSampling(process.env.COATI_BENCH_HEAPPROF);
        cpuStart = process.cpuUsage();
        startAt = performance.now();
        deadline = setTimeout(() => void finish(true), s.deadlineMs);
        if (s.role === 'initiator') void initiateAll(s, mgr);
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
 * Allocation sampling over the measured window (COATI_BENCH_HEAPPROF=<dir>): every
 * sampled allocation, including what the young and old generation GCs collected, so
 * the profile shows where the garbage comes from. Written as <dir>/<role>.heapprofile.
 */
function startHeapSampling(dir: string): { stop(role: string): Promise<void> } {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((res, rej) => session.post(method, params ?? {}, (err, r) => (err ? rej(err) : res(r))));
  const started = post('HeapProfiler.startSampling', {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return {
    async stop(role) {
      await started;
      const r = (await post('HeapProfiler.stopSampling')) as { profile: unknown };
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${role}.heapprofile`), JSON.stringify(r.profile));
      session.disconnect();
    },
  };
}
