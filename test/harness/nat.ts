/**
 * NAT topology for NAT-T tests: host A sits behind a router namespace that masquerades
 * (nftables) A's private network onto the public link to B.
 *
 *   A (192.168.1.2) ── lan ── router (192.168.1.1 | 203.0.113.1) ── wan ── B (203.0.113.2)
 *
 * B has no route to 192.168.1.0/24: everything A sends reaches B from 203.0.113.1.
 */
import type { Lab, Netns } from './netns.js';

export interface NatTopology {
  a: Netns;
  router: Netns;
  b: Netns;
  /** A's private address, the router's two addresses, and B's address (no prefix length). */
  aAddr: string;
  routerLanAddr: string;
  routerWanAddr: string;
  bAddr: string;
  aIf: string;
  routerLanIf: string;
  routerWanIf: string;
  bIf: string;
  /** Replaces the NAT rule: `masquerade` (default), `masquerade random` (new port per flow) or none. */
  setNat(mode: 'masquerade' | 'random' | 'off'): Promise<void>;
  /** Forgets NAT mappings (conntrack entries of UDP 500/4500), like a NAT box reboot. */
  flushMappings(): Promise<void>;
}

export interface NatOptions {
  lanPrefix?: string;
  wanPrefix?: string;
  labels?: { a?: string; router?: string; b?: string };
}

export async function natTopology(lab: Lab, opts: NatOptions = {}): Promise<NatTopology> {
  const lan = opts.lanPrefix ?? '192.168.1';
  const wan = opts.wanPrefix ?? '203.0.113';
  const a = await lab.netns(opts.labels?.a ?? 'a');
  const router = await lab.netns(opts.labels?.router ?? 'nat');
  const b = await lab.netns(opts.labels?.b ?? 'b');
  const l1 = await lab.link(a, router, { aName: 'eth0', bName: 'lan0', a: [`${lan}.2/24`], b: [`${lan}.1/24`] });
  const l2 = await lab.link(router, b, { aName: 'wan0', bName: 'eth0', a: [`${wan}.1/24`], b: [`${wan}.2/24`] });
  await a.addRoute('default', { via: `${lan}.1` });
  await router.enableForwarding();
  const setNat = async (mode: 'masquerade' | 'random' | 'off') => {
    await router.exec(['nft', 'delete table ip coati_nat'], { allowFail: true });
    if (mode === 'off') return;
    const rule = mode === 'random' ? 'masquerade random' : 'masquerade';
    await router.exec(['nft', '-f', '-'], {
      input: `table ip coati_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan0" ip saddr ${lan}.0/24 ${rule}
  }
}
`,
    });
  };
  await setNat('masquerade');
  return {
    a,
    router,
    b,
    aAddr: `${lan}.2`,
    routerLanAddr: `${lan}.1`,
    routerWanAddr: `${wan}.1`,
    bAddr: `${wan}.2`,
    aIf: l1.aIf,
    routerLanIf: l1.bIf,
    routerWanIf: l2.aIf,
    bIf: l2.bIf,
    setNat,
    // No conntrack tool here: re-creating the nat table does not drop entries, so flush
    // by toggling the ruleset and expiring UDP entries via a 1 s timeout policy.
    flushMappings: async () => {
      await router.sysctl('net.netfilter.nf_conntrack_udp_timeout', 1);
      await router.sysctl('net.netfilter.nf_conntrack_udp_timeout_stream', 1);
      await new Promise((r) => setTimeout(r, 1500));
      await router.sysctl('net.netfilter.nf_conntrack_udp_timeout', 30);
      await router.sysctl('net.netfilter.nf_conntrack_udp_timeout_stream', 120);
    },
  };
}
