/**
 * Two (or more) coati IKEv1 engines in one process: in-memory link, memory
 * kernels, a shared fake clock, an optional source NAT per node. Tests step
 * the link datagram by datagram and can drop, duplicate or reorder.
 */
import { randomBytes } from 'node:crypto';
import { Ikev1Manager } from '../../src/ikev1/manager.js';
import type { Endpoint, EngineEvent } from '../../src/ikev2/env.js';
import { DEFAULT_RETRANSMIT } from '../../src/ikev2/retransmit.js';
import { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import { parseIdentity } from '../../src/sa/identity.js';
import type { ChildPolicy, PeerPolicy } from '../../src/sa/policy.js';
import type { EspProposalSpec, IkeProposalSpec } from '../../src/sa/proposal.js';
import { parseTrafficSelector } from '../../src/sa/traffic-selector.js';
import { FakeClock, flushMicrotasks } from '../../src/util/clock.js';
import { mulberry32 } from './ike-pair.js';

export interface Wire {
  data: Buffer;
  from: Endpoint;
  to: Endpoint;
}

export interface V1Node {
  name: string;
  addr: string;
  kernel: MemoryKernel;
  manager: Ikev1Manager;
  events: EngineEvent[];
  keylog: { table: string; line: string }[];
  up: boolean;
}

/** aes128-sha256-modp2048 */
export const P1_AES128_SHA256: IkeProposalSpec = { encr: [{ id: 12, keyLen: 128 }], prf: [5], integ: [12], ke: [14] };
/** aes256-sha1-modp2048 */
export const P1_AES256_SHA1: IkeProposalSpec = { encr: [{ id: 12, keyLen: 256 }], prf: [2], integ: [2], ke: [14] };
export const ESP_AES128_SHA256: EspProposalSpec = {
  encr: [{ id: 12, keyLen: 128 }],
  integ: [12],
  ke: [],
  esn: [false],
};
export const ESP_AES128_SHA256_PFS: EspProposalSpec = { ...ESP_AES128_SHA256, ke: [14] };
export const ESP_GCM256: EspProposalSpec = { encr: [{ id: 20, keyLen: 256 }], integ: [], ke: [], esn: [false] };

export function v1Policy(
  local: { name: string; addr: string },
  remote: { name: string; addr: string },
  over: Partial<PeerPolicy> = {},
  child: Partial<ChildPolicy> = {},
): PeerPolicy {
  return {
    name: remote.name,
    version: 1,
    remoteAddress: remote.addr,
    remotePort: 500,
    localAddress: local.addr,
    localId: parseIdentity(`fqdn:${local.name}.mesh`),
    remoteId: parseIdentity(`fqdn:${remote.name}.mesh`),
    auth: { kind: 'psk', secret: Buffer.from('v1-mesh-psk-0123456789abcdef') },
    ikeProposals: [P1_AES128_SHA256],
    ikeLifetimeMs: 4 * 3600_000,
    rekeyMarginMs: 540_000,
    rekeyJitter: 0.1,
    children: [
      {
        name: 'host',
        mode: 'transport',
        localTs: [parseTrafficSelector(local.addr)],
        remoteTs: [parseTrafficSelector(remote.addr)],
        espProposals: [ESP_AES128_SHA256],
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
    fragmentation: false,
    fragmentSize: 1280,
    ...over,
  };
}

export class V1Mesh {
  readonly clock = new FakeClock();
  readonly nodes = new Map<string, V1Node>();
  queue: Wire[] = [];
  /** Return false to drop a datagram as it is sent. */
  filter: ((w: Wire) => boolean) | undefined;
  readonly sent: Wire[] = [];
  readonly rand: () => number;
  private readonly nats = new Map<string, { outside: string; next: number; ports: Map<number, number> }>();

  constructor(seed = 11) {
    this.rand = mulberry32(seed);
  }

  /** Puts `node` behind a source NAT mapping it to `outside`. */
  natBehind(node: V1Node, outside: string, firstPort = 40000): void {
    this.nats.set(node.addr, { outside, next: firstPort, ports: new Map() });
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
      return undefined;
    }
    return w;
  }

  add(name: string, addr: string, reuseKernel?: MemoryKernel): V1Node {
    const kernel = reuseKernel ?? new MemoryKernel({ now: () => this.clock.now(), random: this.rand });
    const node: V1Node = {
      name,
      addr,
      kernel,
      manager: undefined as unknown as Ikev1Manager,
      events: [],
      keylog: [],
      up: true,
    };
    node.manager = new Ikev1Manager({
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
      keylog: (table, line) => node.keylog.push({ table, line }),
      sourceFor: async () => addr,
    });
    this.nodes.set(name, node);
    return node;
  }

  /** A restarted daemon on the node (same kernel unless `freshKernel`), with the same peers. */
  async reboot(name: string, freshKernel = true): Promise<V1Node> {
    const old = this.node(name);
    old.up = false;
    await old.manager.close({ keepKernel: true });
    const peers = old.manager
      .peerNames()
      .map((p) => old.manager.peer(p)?.policy)
      .filter((p) => p !== undefined);
    const n = this.add(name, old.addr, freshKernel ? undefined : old.kernel);
    for (const p of peers) n.manager.setPeer(p);
    return n;
  }

  pair(over: Partial<PeerPolicy> = {}, child: Partial<ChildPolicy> = {}): void {
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) if (a !== b) a.manager.setPeer(v1Policy(a, b, over, child));
  }

  node(name: string): V1Node {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  private byAddr(addr: string): V1Node | undefined {
    for (const n of this.nodes.values()) if (n.addr === addr && n.up) return n;
    return undefined;
  }

  async step(index = 0): Promise<Wire | undefined> {
    const [sent] = this.queue.splice(index, 1);
    if (!sent) return undefined;
    const w = this.translateIn(sent);
    if (!w) return sent;
    const dst = this.byAddr(w.to.addr);
    if (dst && !(w.data.length === 1 && w.data[0] === 0xff)) dst.manager.receive(w.data, w.from, w.to);
    await flushMicrotasks(8);
    return w;
  }

  async settle(max = 10_000): Promise<void> {
    await flushMicrotasks(8);
    for (let i = 0; i < max && this.queue.length; i++) await this.step();
    await flushMicrotasks(8);
  }

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

/** Installed phase 2 SAs of a node's SAs towards a peer. */
export function installedChildren(n: V1Node, peer: string) {
  return n.manager
    .sasOf(peer)
    .flatMap((sa) => [...sa.children.values()])
    .filter((c) => c.state === 'installed');
}
