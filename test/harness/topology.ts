/**
 * The usual two-gateway topology: A and B on one link (IPv4 + IPv6), each with a
 * protected subnet behind it (a one-host namespace on a second veth).
 *
 *   lanA host 10.1.0.2 ── A (10.1.0.1 | 198.51.100.1, fd00:1::1) ══ wan0 ══ B (198.51.100.2, fd00:1::2 | 10.2.0.1) ── lanB host 10.2.0.2
 *
 * Addresses match the golden strongSwan configs (test/fixtures/golden).
 */
import type { Lab, Netns, ProtectedSubnet } from './netns.js';

export interface PairTopology {
  a: Netns;
  b: Netns;
  lanA: ProtectedSubnet;
  lanB: ProtectedSubnet;
  /** Link interface name on both gateways. */
  wanIf: string;
  aAddr: string;
  bAddr: string;
  aAddr6: string;
  bAddr6: string;
  /** Protected subnets (CIDR), for traffic selectors. */
  netA: string;
  netB: string;
}

export async function pairTopology(lab: Lab, opts: { labels?: [string, string]; mtu?: number } = {}) {
  const [la, lb] = opts.labels ?? ['a', 'b'];
  const a = await lab.netns(la);
  const b = await lab.netns(lb);
  await lab.link(a, b, {
    aName: 'wan0',
    bName: 'wan0',
    a: ['198.51.100.1/24', 'fd00:1::1/64'],
    b: ['198.51.100.2/24', 'fd00:1::2/64'],
    ...(opts.mtu ? { mtu: opts.mtu } : {}),
  });
  const lanA = await lab.protectedSubnet(a, { gateway: '10.1.0.1/24', host: '10.1.0.2/24' });
  const lanB = await lab.protectedSubnet(b, { gateway: '10.2.0.1/24', host: '10.2.0.2/24' });
  const topo: PairTopology = {
    a,
    b,
    lanA,
    lanB,
    wanIf: 'wan0',
    aAddr: '198.51.100.1',
    bAddr: '198.51.100.2',
    aAddr6: 'fd00:1::1',
    bAddr6: 'fd00:1::2',
    netA: '10.1.0.0/24',
    netB: '10.2.0.0/24',
  };
  return topo;
}
