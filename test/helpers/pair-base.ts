/**
 * What the in-process IKEv2 and IKEv1 harnesses (ike-pair.ts, ike1-pair.ts) share: the
 * in-memory link between engines (a datagram queue the tests step through, a drop
 * filter, an optional source NAT per node), the shared fake clock and seeded PRNG, the
 * engine environment each node's manager gets, and the base of the per-peer policy.
 */
import { randomBytes } from 'node:crypto';
import type { Endpoint, EngineEnv, EngineEvent } from '../../src/ikev2/env.js';
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

/** What differs between the IKEv2 and IKEv1 default peer policies of the harnesses. */
export interface PolicyDefaults {
  version: 1 | 2;
  psk: string;
  ikeProposals: IkeProposalSpec[];
  espProposals: EspProposalSpec[];
  fragmentation: boolean;
}

/**
 * A PSK peer policy from `local` to `remote` (identities `fqdn:<name>.mesh`, one
 * transport-mode child `host` between the two addresses), then `over` / `child`.
 */
export function meshPolicy(
  defaults: PolicyDefaults,
  local: { name: string; addr: string },
  remote: { name: string; addr: string },
  over: Partial<PeerPolicy> = {},
  child: Partial<ChildPolicy> = {},
): PeerPolicy {
  return {
    name: remote.name,
    version: defaults.version,
    remoteAddress: remote.addr,
    remotePort: 500,
    localAddress: local.addr,
    localId: parseIdentity(`fqdn:${local.name}.mesh`),
    remoteId: parseIdentity(`fqdn:${remote.name}.mesh`),
    auth: { kind: 'psk', secret: Buffer.from(defaults.psk) },
    ikeProposals: [...defaults.ikeProposals],
    ikeLifetimeMs: 4 * 3600_000,
    rekeyMarginMs: 540_000,
    rekeyJitter: 0.1,
    children: [
      {
        name: 'host',
        mode: 'transport',
        localTs: [parseTrafficSelector(local.addr)],
        remoteTs: [parseTrafficSelector(remote.addr)],
        espProposals: [...defaults.espProposals],
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
    fragmentation: defaults.fragmentation,
    fragmentSize: 1280,
    ...over,
  };
}

/** What the link needs of a node's manager (Ikev2Manager and Ikev1Manager both fit). */
export interface LinkManager {
  receive(data: Buffer, from: Endpoint, to: Endpoint): void;
  peerNames(): string[];
  peer(name: string): { policy: PeerPolicy } | undefined;
}

export interface LinkNode<M extends LinkManager = LinkManager> {
  name: string;
  addr: string;
  kernel: MemoryKernel;
  manager: M;
  events: EngineEvent[];
  /** When false the node's process is "dead": it neither receives nor sends. */
  up: boolean;
}

/**
 * Engines on one in-memory link with a shared fake clock. Subclasses create the nodes
 * (`add`) with `blankNode` + `engineEnv` and register them in `nodes`.
 */
export abstract class LinkMesh<N extends LinkNode> {
  readonly clock = new FakeClock();
  readonly nodes = new Map<string, N>();
  /** Datagrams in flight, in order. */
  queue: Wire[] = [];
  /** Optional filter: return false to drop a datagram as it is sent. */
  filter: ((w: Wire) => boolean) | undefined;
  /** Every datagram ever sent (for assertions), as it left the sender (before NAT). */
  readonly sent: Wire[] = [];
  readonly rand: () => number;
  /** Source NAT per inside address: its public address and port mappings. */
  private readonly nats = new Map<string, { outside: string; next: number; ports: Map<number, number> }>();

  constructor(seed: number) {
    this.rand = mulberry32(seed);
  }

  /** Puts `node` behind a NAT that maps it to `outside` (new port mappings start at `firstPort`). */
  natBehind(node: N, outside: string, firstPort = 40000): void {
    this.nats.set(node.addr, { outside, next: firstPort, ports: new Map() });
  }

  /** The NAT forgets its mappings (e.g. a router reboot): the next packets get new ports. */
  rebindNat(node: N, firstPort: number): void {
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

  protected newKernel(): MemoryKernel {
    return new MemoryKernel({ now: () => this.clock.now(), random: this.rand });
  }

  /** A node without its manager yet (a fresh kernel unless `reuseKernel`). */
  protected blankNode(name: string, addr: string, reuseKernel?: MemoryKernel): Omit<LinkNode, 'manager'> {
    return { name, addr, kernel: reuseKernel ?? this.newKernel(), events: [], up: true };
  }

  /**
   * The engine environment of `node` (everything but the key log): its datagrams go
   * onto the link (recorded in `sent`, through `filter` and the NAT) while it is up;
   * events and error logs into `node.events`.
   */
  protected engineEnv(node: Omit<LinkNode, 'manager'>): Omit<EngineEnv, 'keylog'> {
    return {
      clock: this.clock,
      random: (n) => randomBytes(n),
      rand01: this.rand,
      kernel: node.kernel,
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
      sourceFor: async () => node.addr,
    };
  }

  /** The peer policies a node's manager holds (to configure its successor after a restart). */
  protected peerPolicies(node: N): PeerPolicy[] {
    return node.manager
      .peerNames()
      .map((p) => node.manager.peer(p)?.policy)
      .filter((p) => p !== undefined);
  }

  node(name: string): N {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  private byAddr(addr: string): N | undefined {
    for (const n of this.nodes.values()) if (n.addr === addr && n.up) return n;
    return undefined;
  }

  /** Delivers one datagram (the first in flight, or the one at `index`). */
  async step(index = 0): Promise<Wire | undefined> {
    const [sent] = this.queue.splice(index, 1);
    if (!sent) return undefined;
    const w = this.translateIn(sent);
    if (!w) return sent;
    const dst = this.byAddr(w.to.addr);
    // Port 4500 carries a non-ESP marker; a single 0xff byte is a NAT-T keepalive.
    if (dst && !(w.data.length === 1 && w.data[0] === 0xff)) dst.manager.receive(w.data, w.from, w.to);
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
