/**
 * Postmortem scenario 9 with real coatid processes: a fleet-wide start while part of the
 * fleet is down (a rack without power). 16 daemons are configured as a full mesh; 8 of
 * them are down, their link too, so nothing answers them, not even ARP. The 8 that start
 * must reach a full mesh among themselves quickly.
 *
 * `max_concurrent_initiations = 2` and `retransmit_base = "1s"` make the effect visible
 * with 15 peers per host: a start-up initiation to a dead peer holds its slot until its
 * second retransmission is due (1 s + 1.8 s), then goes on without it. Before, it held
 * the slot for its whole retransmission time (1 + 1.8 + 3.2 + 5.8 + 10.5 + 18.9 s, about
 * 41 s): two dead peers drawn early stalled a host's start-up towards every live peer
 * behind them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../harness/netns.js';
import type { DaemonNode } from '../helpers/daemon.js';
import { MeshProcs, report } from '../helpers/mesh-procs.js';

const N = 16;
const DOWN = 8;

let lab: Lab;
let m: MeshProcs;
let live: DaemonNode[];

beforeAll(async () => {
  lab = await Lab.create({ label: 'scen-partial' });
  m = await MeshProcs.create(lab, {
    n: N,
    prefix: '10.85.0',
    peerExtra: () => 'retransmit_base = "1s"\ndpd_delay = "10s"\ndpd_timeout = "10s"\n',
    mainEdit: (text) => text.replace(/max_concurrent_initiations = \d+/, 'max_concurrent_initiations = 2'),
  });
  live = m.nodes.slice(0, N - DOWN);
  for (const n of m.nodes.slice(N - DOWN)) await n.ns.ip('link', 'set', 'eth0', 'down');
}, 120_000);

afterAll(async () => {
  await lab?.destroy();
});

describe(`full mesh of ${N} with ${DOWN} hosts down`, () => {
  it(`the ${N - DOWN} that start reach a full mesh among themselves within 25 s`, async () => {
    const t0 = m.startAll(live);
    const upAt = await m.waitAllPairs(live, 25_000, 250);
    // Crossing initiations resolved: one IKE SA per pair on every live daemon.
    const settledAt = await m.waitSettled(live, 20_000, 3000, 250);
    expect(m.duplicates(live, { pending: true })).toEqual([]);
    // Their start-up is still working through the dead peers (or done with them), a slot at a time.
    const st = await m.status(live[0] as DaemonNode);
    expect(st?.initiations?.maxConcurrent).toBe(2);
    report(`9 mesh of ${N}, ${DOWN} down`, {
      all_live_pairs_consistent_ms: upAt - t0,
      one_ike_sa_everywhere_ms: settledAt - t0,
      pairs: ((N - DOWN) * (N - DOWN - 1)) / 2,
    });
  }, 60_000);
});
