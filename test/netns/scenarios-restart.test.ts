/**
 * Postmortem scenarios with real coatid processes: a crashed daemon restarted
 * 3 s later, a "hard reboot" (crash + state directory gone), and both ends
 * restarted at the same moment. Three daemons in namespaces on one bridge
 * (memory kernel backend: IKE is real over UDP, ESP is not installed), DPD
 * 2 s / 3 s, dpd_action = restart, restart backoff capped at 2 s.
 *
 * "Back" = both ends report the same IKE SA (SPIs, complementary roles) and one
 * installed Child SA pair with crosswise SPIs, and each daemon's own SA
 * transitions show exactly one live IKE SA and one live Child SA per peer.
 */
import { existsSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, sleep } from '../harness/netns.js';
import type { DaemonNode } from '../helpers/daemon.js';
import { MeshProcs, report } from '../helpers/mesh-procs.js';

let lab: Lab;
let m: MeshProcs;
let n1: DaemonNode;
let n2: DaemonNode;
let n3: DaemonNode;

const PEER = `dpd_delay = "2s"
dpd_timeout = "3s"
dpd_action = "restart"
restart_backoff_max = "2s"
retransmit_base = "500ms"
retransmit_tries = 3
`;

beforeAll(async () => {
  lab = await Lab.create({ label: 'scen-restart' });
  m = await MeshProcs.create(lab, { n: 3, prefix: '10.81.0', peerExtra: () => PEER });
  [n1, n2, n3] = m.nodes as [DaemonNode, DaemonNode, DaemonNode];
  m.startAll();
  await m.waitAllPairs(m.nodes, 20_000, 50);
});

afterAll(async () => {
  await lab?.destroy();
});

/** Every pair consistent and no daemon holding a second IKE or Child SA with anyone. */
async function expectMeshSettled(): Promise<number> {
  const at = await m.waitSettled();
  expect(m.duplicates(m.nodes, { pending: true })).toEqual([]);
  return at;
}

/** The "coatid started" line of the current process of `n` (epoch ms). */
function startedLineAt(n: DaemonNode): number {
  const l = m.firstLine(n, (x) => /^coatid \S+ started$/.test(x.msg));
  if (!l) throw new Error(`${n.name} has no start line\n${m.logs()}`);
  return l.at;
}

async function crashAndRestart(victim: DaemonNode, opts: { wipeState: boolean }) {
  const before = await m.waitPair(n1, victim);
  const killedAt = Date.now();
  await m.kill(victim, 'SIGKILL');
  if (opts.wipeState) {
    rmSync(victim.stateDir, { recursive: true, force: true });
    expect(existsSync(victim.stateDir)).toBe(false);
  }
  await sleep(3000 - (Date.now() - killedAt));
  const spawnedAt = m.start(victim);
  const ctlAt = await m.ctlUp(victim);
  const upAt = startedLineAt(victim);
  const others = m.nodes.filter((x) => x !== victim);
  const flowAt = Math.max(...(await Promise.all(others.map((o) => m.waitFlow(o, victim, spawnedAt)))));
  const settledAt = await expectMeshSettled();
  // A new relationship, not the one from before the crash.
  const after = await m.waitPair(n1, victim);
  expect(after.ikeSpiI).not.toBe(before.ikeSpiI);
  const figures = {
    flow_after_daemon_up_ms: flowAt - upAt,
    flow_after_spawn_ms: flowAt - spawnedAt,
    daemon_start_ms: upAt - spawnedAt,
    admin_socket_after_spawn_ms: ctlAt - spawnedAt,
    outage_ms: flowAt - killedAt,
    one_ike_sa_per_pair_after_daemon_up_ms: settledAt - upAt,
  };
  return figures;
}

describe('peer daemon SIGKILLed and restarted after 3 s', () => {
  it('is back with every peer within 1.5 s of the restarted daemon being up', async () => {
    const f = await crashAndRestart(n2, { wipeState: false });
    report('1 kill -9 + restart after 3 s', f);
    expect(f.flow_after_daemon_up_ms).toBeLessThan(1500);
  }, 60_000);
});

describe('hard reboot: daemon killed, its state directory deleted, restarted', () => {
  it('is back with every peer within 1.5 s, one IKE SA per pair', async () => {
    const f = await crashAndRestart(n3, { wipeState: true });
    report('2 hard reboot (state dir wiped)', f);
    expect(f.flow_after_daemon_up_ms).toBeLessThan(1500);
  }, 60_000);
});

describe('both ends of a pair restarted at the same moment', () => {
  it('settles with exactly one IKE SA per pair, 5 times in a row', async () => {
    const flow: number[] = [];
    const settle: number[] = [];
    for (let round = 0; round < 5; round++) {
      await Promise.all([m.kill(n1, 'SIGKILL'), m.kill(n2, 'SIGKILL')]);
      const t0 = Date.now();
      m.start(n1);
      m.start(n2);
      await Promise.all([m.ctlUp(n1), m.ctlUp(n2)]);
      flow.push((await m.waitFlow(n1, n2, t0)) - t0);
      settle.push((await expectMeshSettled()) - t0);
    }
    report('5 both restarted at once (5 rounds)', {
      flow_after_spawn_ms: flow.join('/'),
      one_ike_sa_per_pair_after_spawn_ms: settle.join('/'),
    });
  }, 120_000);
});
