/**
 * Two (or more) coati IKEv1 engines in one process: in-memory link, memory
 * kernels, a shared fake clock, an optional source NAT per node. Tests step
 * the link datagram by datagram and can drop, duplicate or reorder. The link
 * itself is pair-base.ts (shared with the IKEv2 harness, ike-pair.ts).
 */
import { Ikev1Manager } from '../../src/ikev1/manager.js';
import type { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import type { ChildPolicy, PeerPolicy } from '../../src/sa/policy.js';
import type { EspProposalSpec, IkeProposalSpec } from '../../src/sa/proposal.js';
import { LinkMesh, type LinkNode, meshPolicy } from './pair-base.js';

export type { Wire } from './pair-base.js';

export interface V1Node extends LinkNode<Ikev1Manager> {
  keylog: { table: string; line: string }[];
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
  return meshPolicy(
    {
      version: 1,
      psk: 'v1-mesh-psk-0123456789abcdef',
      ikeProposals: [P1_AES128_SHA256],
      espProposals: [ESP_AES128_SHA256],
      fragmentation: false,
    },
    local,
    remote,
    over,
    child,
  );
}

export class V1Mesh extends LinkMesh<V1Node> {
  constructor(seed = 11) {
    super(seed);
  }

  add(name: string, addr: string, reuseKernel?: MemoryKernel): V1Node {
    const node: V1Node = {
      ...this.blankNode(name, addr, reuseKernel),
      manager: undefined as unknown as Ikev1Manager,
      keylog: [],
    };
    node.manager = new Ikev1Manager({
      ...this.engineEnv(node),
      keylog: (table, line) => node.keylog.push({ table, line }),
    });
    this.nodes.set(name, node);
    return node;
  }

  /** A restarted daemon on the node (same kernel unless `freshKernel`), with the same peers. */
  async reboot(name: string, freshKernel = true): Promise<V1Node> {
    const old = this.node(name);
    old.up = false;
    await old.manager.close({ keepKernel: true });
    const peers = this.peerPolicies(old);
    const n = this.add(name, old.addr, freshKernel ? undefined : old.kernel);
    for (const p of peers) n.manager.setPeer(p);
    return n;
  }

  pair(over: Partial<PeerPolicy> = {}, child: Partial<ChildPolicy> = {}): void {
    for (const a of this.nodes.values())
      for (const b of this.nodes.values()) if (a !== b) a.manager.setPeer(v1Policy(a, b, over, child));
  }
}

/** Installed phase 2 SAs of a node's SAs towards a peer. */
export function installedChildren(n: V1Node, peer: string) {
  return n.manager
    .sasOf(peer)
    .flatMap((sa) => [...sa.children.values()])
    .filter((c) => c.state === 'installed');
}
