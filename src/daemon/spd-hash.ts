/**
 * The kernel keeps IPsec policies whose selectors are at least as specific as
 * the SPD hash thresholds (local/remote prefix lengths; 32/32 for IPv4 and
 * 128/128 for IPv6 by default) in hash tables, and every other policy on one
 * list that each packet lookup walks. A mesh with per-host subnets (/24 ↔ /24)
 * therefore puts all its policies on that list, and lookups slow down linearly
 * with the mesh (bench/README.md, kernel-vm-scale: 2.3-3.1x). `[kernel]
 * spd_hash_v4 / spd_hash_v6` set the thresholds at start: explicit "L/R", or
 * "auto" = the shortest local and remote prefixes among the configured Child
 * SAs, so that every coati policy is hashed. The setting is netns-wide.
 */

import type { KernelConfig, PeerConfig } from '../config/types.js';
import type { SpdHthresh } from '../kernel/xfrm/struct-types.js';

export type SpdThresholds = { v4?: SpdHthresh; v6?: SpdHthresh };

const MAX = { v4: 32, v6: 128 } as const;

/** The thresholds to set (absent for a family: leave the kernel's as they are). */
export function spdThresholds(kernel: KernelConfig, peers: Iterable<PeerConfig>): SpdThresholds {
  const out: SpdThresholds = {};
  const list = [...peers];
  for (const fam of ['v4', 'v6'] as const) {
    const want = kernel.spdHash[fam];
    if (want === undefined) continue;
    if (want !== 'auto') {
      out[fam] = { lbits: want.lbits, rbits: want.rbits };
      continue;
    }
    const family = fam === 'v4' ? 4 : 6;
    let lbits: number = MAX[fam];
    let rbits: number = MAX[fam];
    for (const p of list) {
      for (const c of p.children) {
        if (c.localTs.kind === 'prefixes')
          for (const x of c.localTs.prefixes) if (x.family === family) lbits = Math.min(lbits, x.length);
        if (c.remoteTs.kind === 'prefixes')
          for (const x of c.remoteTs.prefixes) if (x.family === family) rbits = Math.min(rbits, x.length);
      }
    }
    // Host-to-host selectors only: the kernel's defaults already hash them; leave them.
    if (lbits < MAX[fam] || rbits < MAX[fam]) out[fam] = { lbits, rbits };
  }
  return out;
}

export const sameThresholds = (a: SpdThresholds, b: SpdThresholds): boolean => JSON.stringify(a) === JSON.stringify(b);

export const formatThresholds = (t: SpdThresholds): string =>
  (['v4', 'v6'] as const)
    .filter((f) => t[f])
    .map((f) => `${f} ${t[f]?.lbits}/${t[f]?.rbits}`)
    .join(', ');
