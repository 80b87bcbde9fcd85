/**
 * One coati IKEv1 engine in its own process, for bench/handshake-v1.ts: the
 * IKEv1 twin of bench/handshake-peer.ts (same IPC protocol, same PeerSetup and
 * PeerDone shapes), driving an `Ikev1Manager` with a MemoryKernel, the system
 * clock and native UDP sockets on 500 and 4500 opened inside a namespace.
 *
 * Suite: Main Mode PSK aes128-sha256-modp2048, Quick Mode ESP aes128-sha256
 * (no PFS), tunnel mode, one Quick Mode per ISAKMP SA. `established` in the
 * `done` message counts installed phase 2 SA pairs (the initiator installs
 * after QM2, the responder after QM3), so `done` means K Main Modes AND K
 * Quick Modes completed on this side.
 *
 *   parent -> { type: 'setup', ... }   child -> { type: 'ready', mem }
 *   parent -> { type: 'start' }        (snapshot CPU; the initiator also initiates all K SAs)
 *   child  -> { type: 'done', ... }    when K phase 2 pairs are installed (or the deadline passed)
 *   parent -> { type: 'stats' }        child -> { type: 'stats', mem, counters }
 *   parent -> { type: 'exit' }
 */
import { randomBytes } from 'node:crypto';
import { Ikev1Manager } from '../src/ikev1/manager.js';
import type { EngineEvent, OutboundDatagram } from '../src/ikev2/env.js';
import { MemoryKernel } from '../src/kernel/memory/memory-kernel.js';
import { IkeUdpSocket } from '../src/net/udp-socket.js';
import { parseIdentity } from '../src/sa/identity.js';
import type { PeerPolicy } from '../src/sa/policy.js';
import { parseTrafficSelector } from '../src/sa/traffic-selector.js';
import { systemClock } from '../src/util/clock.js';
import { ESP_AES128_SHA256, P1_AES128_SHA256, v1Policy } from '../test/helpers/ike1-pair.js';
import { tsHost } from './handshake-common.js';
import type { MemSample, PeerDone, PeerSetup } from './handshake-peer.js';

export const initiatorId = (i: number) => `fqdn:i${i}.bench`;
export const responderId = 'fqdn:r.bench';

function policies(s: PeerSetup): PeerPolicy[] {
  const out: PeerPolicy[] = [];
  const local = { name: 'x', addr: s.localAddr };
  const ini = s.role === 'initiator';
  for (let i = 0; i < s.k; i++) {
    out.push(
      v1Policy(
        local,
        { name: ini ? `r${i}` : `i${i}`, addr: s.remoteAddr },
        {
          localId: parseIdentity(ini ? initiatorId(i) : responderId),
          remoteId: parseIdentity(ini ? responderId : initiatorId(i)),
          auth: { kind: 'psk', secret: Buffer.from(s.psk) },
          ikeProposals: [P1_AES128_SHA256],
          dpdAction: 'clear',
          start: 'none',
        },
        {
          name: 'c',
          mode: 'tunnel',
          localTs: [parseTrafficSelector(tsHost(s.localNet, i))],
          remoteTs: [parseTrafficSelector(tsHost(s.remoteNet, i))],
          espProposals: [ESP_AES128_SHA256],
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
let manager: Ikev1Manager | undefined;
let kernel: MemoryKernel | undefined;
const sockets = new Map<number, IkeUdpSocket>();
const counters = { established: 0, phase1: 0, childFailures: 0, failures: 0, retransmits: 0, drops: 0 };
let startAt = 0;
let cpuStart: NodeJS.CpuUsage = { user: 0, system: 0 };
let finished = false;
let deadline: NodeJS.Timeout | undefined;
const NON_ESP = Buffer.alloc(4);

function onEvent(ev: EngineEvent): void {
  switch (ev.type) {
    case 'handshake.completed':
      counters.phase1++;
      break;
    case 'child.state':
      if ((ev as { to?: string }).to === 'installed') {
        counters.established++;
        if (setup && counters.established >= setup.k) void finish(false);
      }
      break;
    case 'handshake.failed':
      counters.failures++;
      break;
    case 'child.failed':
    case 'child.refused':
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
  const done: PeerDone & { phase1: number } = {
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

function openSockets(s: PeerSetup, mgr: Ikev1Manager): void {
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
  // NAT keepalives (a single 0xff) are not IKE: nothing to send in the bench.
  if (d.data.length === 1) return;
  const sock = sockets.get(d.local.port === 4500 ? 4500 : 500);
  if (!sock) return;
  const data = d.local.port === 4500 ? Buffer.concat([NON_ESP, d.data]) : d.data;
  try {
    sock.send(data, d.remote.addr, d.remote.port);
  } catch (err) {
    process.stderr.write(`[${setup?.role}] send: ${(err as Error).message}\n`);
  }
}

/** Starts all K Main Modes without waiting, yielding every 8 so answers are read off the socket. */
async function initiateAll(s: PeerSetup, mgr: Ikev1Manager): Promise<void> {
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
      const mgr = new Ikev1Manager(
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
        // A start-up herd of K SAs from one address: no per-address half-open cap.
        { halfOpenPerAddress: 1_000_000, halfOpenTimeoutMs: 120_000 },
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
