/**
 * Two (or more) coati IKEv2 engines in one process: in-memory link, memory
 * kernels, a shared fake clock. Tests step the link message by message and
 * can drop, duplicate or reorder datagrams. The link itself is pair-base.ts
 * (shared with the IKEv1 harness, ike1-pair.ts).
 */
import { Ikev2Manager, type ManagerLimits } from '../../src/ikev2/manager.js';
import type { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import type { ChildPolicy, PeerPolicy } from '../../src/sa/policy.js';
import type { EspProposalSpec, IkeProposalSpec } from '../../src/sa/proposal.js';
import { LinkMesh, type LinkNode, meshPolicy } from './pair-base.js';

export { mulberry32, type Wire } from './pair-base.js';

export interface Node extends LinkNode<Ikev2Manager> {
  keylog: string[];
}

export const IKE_GCM_X25519: IkeProposalSpec = { encr: [{ id: 20, keyLen: 256 }], prf: [5], integ: [], ke: [31] };
export const IKE_CBC_MODP: IkeProposalSpec = { encr: [{ id: 12, keyLen: 128 }], prf: [5], integ: [12], ke: [14] };
export const ESP_GCM: EspProposalSpec = { encr: [{ id: 20, keyLen: 256 }], integ: [], ke: [], esn: [false] };
export const ESP_CBC: EspProposalSpec = { encr: [{ id: 12, keyLen: 128 }], integ: [12], ke: [14], esn: [false] };

export function peerPolicy(
  local: Node | { name: string; addr: string },
  remote: { name: string; addr: string },
  over: Partial<PeerPolicy> = {},
  child: Partial<ChildPolicy> = {},
): PeerPolicy {
  return meshPolicy(
    {
      version: 2,
      psk: 'mesh-test-psk-0123456789abcdef',
      ikeProposals: [IKE_GCM_X25519, IKE_CBC_MODP],
      espProposals: [ESP_GCM, ESP_CBC],
      fragmentation: true,
    },
    local,
    remote,
    over,
    child,
  );
}

export class Mesh extends LinkMesh<Node> {
  constructor(seed = 7) {
    super(seed);
  }

  /** Kills a node's daemon; `hardReboot` also flushes its kernel SAs and policies. */
  crash(name: string, hardReboot = false): void {
    const n = this.node(name);
    n.up = false;
    n.manager.close({ keepKernel: true }).catch(() => {});
    if (hardReboot) n.kernel = this.newKernel();
  }

  /** Starts a fresh daemon on a crashed node (same kernel unless it was rebooted), with the same peers. */
  async boot(name: string, pacing: { maxConcurrent?: number; jitterMs?: number } = {}): Promise<Node> {
    const old = this.node(name);
    const peers = this.peerPolicies(old);
    const n = this.add(name, old.addr, {}, old.kernel);
    for (const p of peers) n.manager.setPeer(p);
    await n.manager.start(pacing);
    return n;
  }

  add(name: string, addr: string, limits: Partial<ManagerLimits> = {}, reuseKernel?: MemoryKernel): Node {
    const node: Node = {
      ...this.blankNode(name, addr, reuseKernel),
      manager: undefined as unknown as Ikev2Manager,
      keylog: [],
    };
    node.manager = new Ikev2Manager({ ...this.engineEnv(node), keylog: (_t, line) => node.keylog.push(line) }, limits);
    this.nodes.set(name, node);
    return node;
  }

  /** Configures every node as every other node's peer. */
  fullMesh(over: Partial<PeerPolicy> = {}): void {
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) if (a !== b) a.manager.setPeer(peerPolicy(a, b, over));
  }
}

/** Established IKE SAs of `a` towards peer `b`. */
export function established(a: Node, b: string) {
  return a.manager.established(b);
}
