/**
 * Two (or more) coati IKEv2 engines in one process: in-memory link, memory
 * kernels, a shared fake clock. Tests step the link message by message and
 * can drop, duplicate or reorder datagrams.
 */
import { randomBytes } from 'node:crypto';
import type { Endpoint, EngineEvent } from '../../src/ikev2/env.js';
import { Ikev2Manager, type ManagerLimits } from '../../src/ikev2/manager.js';
import { DEFAULT_RETRANSMIT } from '../../src/ikev2/retransmit.js';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import { parseIdentity } from '../../src/sa/identity.js';
import type { ChildPolicy, PeerPolicy } from '../../src/sa/policy.js';
import type { EspProposalSpec, IkeProposalSpec } from '../../src/sa/proposal.js';
import { parseTrafficSelector } from '../../src/sa/traffic-selector.js';
import { FakeClock, flushMicrotasks } from '../../src/util/clock.js';

export interface Wire {
  data: Buffer;
  from: Endpoint;
  to: Endpoint;
}

export interface Node {
  name: string;
  addr: string;
  kernel: MemoryKernel;
  manager: Ikev2Manager;
  events: EngineEvent[];
  keylog: string[];
  /** When false the node's process is "dead": it neither receives nor sends. */
  up: boolean;
}

export const IKE_GCM_X25519: IkeProposalSpec = { encr: [{ id: 20, keyLen: 256 }], prf: [5], integ: [], ke: [31] };
export const IKE_CBC_MODP: IkeProposalSpec = { encr: [{ id: 12, keyLen: 128 }], prf: [5], integ: [12], ke: [14] };
export const ESP_GCM: EspProposalSpec = { encr: [{ id: 20, keyLen: 256 }], integ: [], ke: [], esn: [false] };
export const ESP_CBC: EspProposalSpec = { encr: [{ id: 12, keyLen: 128 }], integ: [12], ke: [14], esn: [false] };

/** A seeded PRNG so jitter is reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function peerPolicy(
  local: Node | { name: string; addr: string },
  remote: { name: string; addr: string },
  over: Partial<PeerPolicy> = {},
  child: Partial<ChildPolicy> = {},
): PeerPolicy {
  return {
    name: remote.name,
    version: 2,
    remoteAddress: remote.addr,
    remotePort: 500,
    localAddress: local.addr,
    localId: parseIdentity(`fqdn:${local.name}.mesh`),
    remoteId: parseIdentity(`fqdn:${remote.name}.mesh`),
    auth: { kind: 'psk', secret: Buffer.from('mesh-test-psk-0123456789abcdef') },
    ikeProposals: [IKE_GCM_X25519, IKE_CBC_MODP],
    ikeLifetimeMs: 4 * 3600_000,
    rekeyMarginMs: 540_000,
    rekeyJitter: 0.1,
    children: [
      {
        name: 'host',
        mode: 'transport',
        localTs: [parseTrafficSelector(local.addr)],
        remoteTs: [parseTrafficSelector(remote.addr)],
        espProposals: [ESP_GCM, ESP_CBC],
        lifetimeMs: 3600_000,
        rekeyMarginMs: 300_000,
        ...child,
      },
    ],
    dpdDelayMs: 30_000,
    dpdTimeoutMs: 10_000,
    dpdAction: 'restart',
    start: 'now',
    retransmit: { ...DEFAULT_RETRANSMIT },
    restartBackoffMaxMs: 60_000,
    natKeepaliveMs: 20_000,
    fragmentation: true,
    fragmentSize: 1280,
    ...over,
  };
}

export class Mesh {
  readonly clock = new FakeClock();
  readonly nodes = new Map<string, Node>();
  /** Datagrams in flight, in order. */
  queue: Wire[] = [];
  /** Optional filter: return false to drop a datagram as it is sent. */
  filter: ((w: Wire) => boolean) | undefined;
  /** Every datagram ever sent (for assertions), as it left the sender (before NAT). */
  readonly sent: Wire[] = [];
  /** Source NAT per inside address: its public address and port mappings. */
  private readonly nats = new Map<string, { outside: string; next: number; ports: Map<number, number> }>();

  /** Puts `node` behind a NAT that maps it to `outside` (new port mappings start at `firstPort`). */
  natBehind(node: Node, outside: string, firstPort = 40000): void {
    this.nats.set(node.addr, { outside, next: firstPort, ports: new Map() });
  }

  /** The NAT forgets its mappings (e.g. a router reboot): the next packets get new ports. */
  rebindNat(node: Node, firstPort: number): void {
    const n = this.nats.get(node.addr);
    if (n) {
      n.ports.clear();
      n.next = firstPort;
    }
  }

  private translateOut(w: Wire): Wire {
    const n = this.nats.get(w.from.addr);
    if (!n) return w;
    let port = n.ports.get(w.from.port);
    if (port === undefined) {
      port = n.next++;
      n.ports.set(w.from.port, port);
    }
    return { ...w, from: { addr: n.outside, port } };
  }

  private translateIn(w: Wire): Wire | undefined {
    for (const [inside, n] of this.nats) {
      if (n.outside !== w.to.addr) continue;
      for (const [orig, mapped] of n.ports) if (mapped === w.to.port) return { ...w, to: { addr: inside, port: orig } };
      return undefined; // no mapping: the NAT drops it
    }
    return w;
  }
  readonly rand: () => number;

  constructor(seed = 7) {
    this.rand = mulberry32(seed);
  }

  /** Kills a node's daemon; `hardReboot` also flushes its kernel SAs and policies. */
  crash(name: string, hardReboot = false): void {
    const n = this.node(name);
    n.up = false;
    n.manager.close({ keepKernel: true }).catch(() => {});
    if (hardReboot) n.kernel = new MemoryKernel({ now: () => this.clock.now(), random: this.rand });
  }

  /** Starts a fresh daemon on a crashed node (same kernel unless it was rebooted), with the same peers. */
  async boot(name: string, pacing: { maxConcurrent?: number; jitterMs?: number } = {}): Promise<Node> {
    const old = this.node(name);
    const peers = old.manager
      .peerNames()
      .map((p) => old.manager.peer(p)?.policy)
      .filter((p) => p !== undefined);
    const n = this.add(name, old.addr, {}, old.kernel);
    for (const p of peers) n.manager.setPeer(p);
    await n.manager.start(pacing);
    return n;
  }

  add(name: string, addr: string, limits: Partial<ManagerLimits> = {}, reuseKernel?: MemoryKernel): Node {
    const kernel = reuseKernel ?? new MemoryKernel({ now: () => this.clock.now(), random: this.rand });
    const node: Node = {
      name,
      addr,
      kernel,
      manager: undefined as unknown as Ikev2Manager,
      events: [],
      keylog: [],
      up: true,
    };
    node.manager = new Ikev2Manager(
      {
        clock: this.clock,
        random: (n) => randomBytes(n),
        rand01: this.rand,
        kernel,
        send: (d) => {
          if (!node.up) return;
          const w = { data: d.data, from: d.local, to: d.remote };
          this.sent.push(w);
          if (this.filter && !this.filter(w)) return;
          this.queue.push(this.translateOut(w));
        },
        emit: (ev) => node.events.push(ev),
        log: {
          debug() {},
          info() {},
          warn() {},
          error: (m, f) => node.events.push({ type: 'log.error', message: m, ...f }),
        },
        keylog: (_t, line) => node.keylog.push(line),
        sourceFor: async () => addr,
      },
      limits,
    );
    this.nodes.set(name, node);
    return node;
  }

  /** Configures every node as every other node's peer. */
  fullMesh(over: Partial<PeerPolicy> = {}): void {
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) if (a !== b) a.manager.setPeer(peerPolicy(a, b, over));
  }

  node(name: string): Node {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  private byAddr(addr: string): Node | undefined {
    for (const n of this.nodes.values()) if (n.addr === addr) return n;
    return undefined;
  }

  /** Delivers one datagram (the first in flight, or the one at `index`). */
  async step(index = 0): Promise<Wire | undefined> {
    const [sent] = this.queue.splice(index, 1);
    if (!sent) return undefined;
    const w = this.translateIn(sent);
    if (!w) return sent;
    const dst = this.byAddr(w.to.addr);
    if (dst?.up) {
      // Port 4500 carries a non-ESP marker; a single 0xff byte is a NAT-T keepalive.
      if (w.data.length === 1 && w.data[0] === 0xff) return w;
      dst.manager.receive(w.data, w.from, w.to);
    }
    await flushMicrotasks(8);
    return w;
  }

  /** Delivers until nothing is in flight (bounded). */
  async settle(max = 10_000): Promise<void> {
    await flushMicrotasks(8);
    for (let i = 0; i < max && this.queue.length; i++) await this.step();
    await flushMicrotasks(8);
  }

  /** Advances the clock, delivering traffic as timers fire. */
  async advance(ms: number, stepMs = 250): Promise<void> {
    for (let t = 0; t < ms; t += stepMs) {
      await this.clock.advance(Math.min(stepMs, ms - t), async () => {
        await flushMicrotasks(8);
        await this.settle();
      });
    }
    await this.settle();
  }
}

/** Established IKE SAs of `a` towards peer `b`. */
export function established(a: Node, b: string) {
  return a.manager.established(b);
}
