/**
 * Postmortem scenario with real coatid processes: a full mesh of 20 daemons
 * (20 namespaces on one bridge, every daemon configured for the 19 others,
 * start = "now") started at the same moment, five times over. Every one of the
 * 190 pairs must converge to one consistent relationship (same IKE SPIs,
 * complementary roles, one Child SA pair with crosswise SPIs) and every daemon
 * must hold exactly one live IKE SA per peer once the crossing initiations have
 * been resolved: no duplicates (charon keeps up to 28 of 190 here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../harness/netns.js';
import { MeshProcs, report } from '../helpers/mesh-procs.js';

const N = 20;
const ROUNDS = 5;

let lab: Lab;
let m: MeshProcs;

beforeAll(async () => {
  lab = await Lab.create({ label: 'scen-mesh20' });
  m = await MeshProcs.create(lab, {
    n: N,
    prefix: '10.84.0',
    peerExtra: () => 'dpd_delay = "10s"\ndpd_timeout = "10s"\nrestart_backoff_max = "2s"\n',
  });
}, 120_000);

afterAll(async () => {
  await lab?.destroy();
});

describe(`full mesh of ${N} daemons started at once`, () => {
  it(`every one of the ${(N * (N - 1)) / 2} pairs converges with one IKE SA, ${ROUNDS} times`, async () => {
    const rows: { pairsUpMs: number; settledMs: number; ikeSas: number }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const t0 = m.startAll();
      const upAt = await m.waitAllPairs(m.nodes, 30_000, 250);
      const settledAt = await m.waitSettled(m.nodes, 30_000, 3000, 500);
      expect(m.duplicates(m.nodes, { pending: true })).toEqual([]);
      let ikeSas = 0;
      for (const n of m.nodes) for (const e of m.ikeSas(n).values()) ikeSas += e.live.size;
      expect(ikeSas).toBe(N * (N - 1));
      rows.push({ pairsUpMs: upAt - t0, settledMs: settledAt - t0, ikeSas: ikeSas / 2 });
      report(`6 mesh of ${N}, round ${round}`, {
        all_pairs_consistent_ms: upAt - t0,
        one_ike_sa_everywhere_ms: settledAt - t0,
        ike_sas: ikeSas / 2,
      });
      await Promise.all(m.nodes.map((n) => m.kill(n, 'SIGKILL')));
    }
    report(`6 mesh of ${N}, ${ROUNDS} rounds`, {
      all_pairs_consistent_ms: rows.map((r) => r.pairsUpMs).join('/'),
      one_ike_sa_everywhere_ms: rows.map((r) => r.settledMs).join('/'),
    });
  }, 240_000);
});
