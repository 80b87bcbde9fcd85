/**
 * One coati IKEv2 engine in its own process, for bench/handshake.ts: real UDP
 * sockets (500 and 4500, opened inside a network namespace by the native
 * addon), a MemoryKernel, the system clock. Forked by the bench with
 * `--expose-gc`; driven over the IPC channel:
 *
 *   parent -> { type: 'setup', ... }   child -> { type: 'ready', mem }
 *   parent -> { type: 'start' }        (snapshot CPU; the initiator also initiates all K SAs)
 *   child  -> { type: 'done', ... }    when K IKE SAs with their Child SA are up (or the deadline passed)
 *   parent -> { type: 'stats' }        child -> { type: 'stats', mem, counters }
 *   parent -> { type: 'exit' }
 */
import { randomBytes } from 'node:crypto';
import type { EngineEvent, OutboundDatagram } from '../src/ikev2/env.js';
import { Ikev2Manager } from '../src/ikev2/manager.js';
import { MemoryKernel } from '../src/kernel/memory/memory-kernel.js';
import { IkeUdpSocket } from '../src/net/udp-socket.js';
import { parseIdentity } from '../src/sa/identity.js';
import type { PeerPolicy } from '../src/sa/policy.js';
import { parseTrafficSelector } from '../src/sa/traffic-selector.js';
import { systemClock } from '../src/util/clock.js';
import { ESP_GCM, IKE_GCM_X25519, peerPolicy } from '../test/helpers/ike-pair.js';
import { tsHost } from './handshake-common.js';

export interface PeerSetup {
  type: 'setup';
  role: 'initiator' | 'responder';
  k: number;
  netns: string;
  localAddr: string;
  remoteAddr: string;
  /** Protected hosts of SA i: `${localNet}.${i >> 8}.${i & 255}/32` (tunnel-mode traffic selectors). */
  localNet: string;
  remoteNet: string;
  psk: string;
  /** Give up after this long (ms) after `start`. */
  deadlineMs: number;
}

export interface MemSample {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface PeerDone {
  type: 'done';
  role: 'initiator' | 'responder';
  established: number;
  childFailures: number;
  failures: number;
  retransmits: number;
  drops: number;
  /** ms from `start` to the K-th established IKE SA, measured in this process. */
  elapsedMs: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  /** ESP SAs in the memory kernel (2 per Child SA). */
  kernelSas: number;
  timedOut: boolean;
}

/** Identities and names shared with the charon configs of the bench. */
export const initiatorId = (i: number) => `fqdn:i${i}.bench`;
export const responderId = 'fqdn:r.bench';

function policies(s: PeerSetup): PeerPolicy[] {
  const out: PeerPolicy[] = [];
  const local = { name: 'x', addr: s.localAddr };
  const remote = { name: 'y', addr: s.remoteAddr };
  for (let i = 0; i < s.k; i++) {
    const ini = s.role === 'initiator';
    out.push(
      peerPolicy(
        local,
        remote,
        {
          name: ini ? `r${i}` : `i${i}`,
          localId: parseIdentity(ini ? initiatorId(i) : responderId),
          remoteId: parseIdentity(ini ? responderId : initiatorId(i)),
          auth: { kind: 'psk', secret: Buffer.from(s.psk) },
          ikeProposals: [IKE_GCM_X25519],
          dpdAction: 'clear',
          start: 'none',
        },
        {
          name: 'c',
          mode: 'tunnel',
          localTs: [parseTrafficSelector(tsHost(s.localNet, i))],
          remoteTs: [parseTrafficSelector(tsHost(s.remoteNet, i))],
          espProposals: [ESP_GCM],
        },
      ),
    );
  }
  return out;
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

const send = (msg: unknown) => process.send?.(msg);

let setup: PeerSetup | undefined;
let manager: Ikev2Manager | undefined;
let kernel: MemoryKernel | undefined;
const sockets = new Map<number, IkeUdpSocket>();
const counters = { established: 0, childFailures: 0, failures: 0, retransmits: 0, drops: 0 };
let startAt = 0;
let cpuStart: NodeJS.CpuUsage = { user: 0, system: 0 };
let finished = false;
let deadline: NodeJS.Timeout | undefined;
const NON_ESP = Buffer.alloc(4);

function onEvent(ev: EngineEvent): void {
  switch (ev.type) {
    case 'handshake.completed':
      counters.established++;
      if (setup && counters.established >= setup.k) void finish(false);
      break;
    case 'handshake.failed':
      counters.failures++;
      break;
    case 'child.failed':
      counters.childFailures++;
      break;
    case 'retransmit':
      counters.retransmits++;
      break;
    case 'packet.dropped':
      counters.drops++;
      break;
  }
}

async function finish(timedOut: boolean): Promise<void> {
  if (finished || !setup) return;
  finished = true;
  const elapsedMs = performance.now() - startAt;
  const cpu = process.cpuUsage(cpuStart);
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
}

function openSockets(s: PeerSetup, mgr: Ikev2Manager): void {
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
}

function sendDatagram(d: OutboundDatagram): void {
  const sock = sockets.get(d.local.port === 4500 ? 4500 : 500);
  if (!sock) return;
  const data = d.local.port === 4500 ? Buffer.concat([NON_ESP, d.data]) : d.data;
  try {
    sock.send(data, d.remote.addr, d.remote.port);
  } catch (err) {
    process.stderr.write(`[${setup?.role}] send: ${(err as Error).message}\n`);
  }
}

/**
 * Starts all K initiations without waiting for any to complete, yielding to the
 * event loop every few so responses already received are read off the socket
 * (a single synchronous loop over K would overflow the socket's receive buffer).
 */
async function initiateAll(s: PeerSetup, mgr: Ikev2Manager): Promise<void> {
  for (let i = 0; i < s.k; i++) {
    mgr.initiate(`r${i}`).catch((err) => {
      counters.failures++;
      process.stderr.write(`[initiator] initiate r${i}: ${(err as Error).message}\n`);
    });
    if (i % 8 === 7) await new Promise<void>((r) => setImmediate(r));
  }
}

process.on('message', (msg: { type: string }) => {
  switch (msg.type) {
    case 'setup': {
      setup = msg as unknown as PeerSetup;
      const s = setup;
      kernel = new MemoryKernel({ now: () => Date.now() });
      const mgr = new Ikev2Manager(
        {
          clock: systemClock,
          random: (n) => randomBytes(n),
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
        },
        // A start-up herd of K SAs from one address: no cookies, no per-address cap.
        { cookieThreshold: 1_000_000, halfOpenPerAddress: 1_000_000, halfOpenTimeoutMs: 120_000 },
      );
      manager = mgr;
      for (const p of policies(s)) mgr.setPeer(p);
      openSockets(s, mgr);
      send({ type: 'ready', mem: mem() });
      break;
    }
    case 'start': {
      if (!setup || !manager) return;
      const s = setup;
      const mgr = manager;
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
