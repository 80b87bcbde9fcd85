/**
 * Postmortem scenario with real coatid processes: a peer daemon stopped
 * gracefully. node3 runs with `shutdown = "delete"`: on SIGTERM it sends a
 * Delete for each IKE SA before it exits. node1 has dpd_action = restart for
 * node3 (it re-initiates at once on the Delete), node2 has dpd_action = trap
 * (it installs trap policies: status state "trap"). Neither waits for DPD
 * (delay 2 s / timeout 3 s) to notice. When node3 comes back, every pair is
 * up again with one IKE SA.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, sleep, waitFor } from '../harness/netns.js';
import type { DaemonNode } from '../helpers/daemon.js';
import { MeshProcs, report } from '../helpers/mesh-procs.js';

let lab: Lab;
let m: MeshProcs;
let n1: DaemonNode;
let n2: DaemonNode;
let n3: DaemonNode;

beforeAll(async () => {
  lab = await Lab.create({ label: 'scen-shutdown' });
  m = await MeshProcs.create(lab, {
    n: 3,
    prefix: '10.83.0',
    daemonExtra: (n) => (n.name === 'node3' ? 'shutdown = "delete"\n' : ''),
    peerExtra: (n, p) =>
      'dpd_delay = "2s"\ndpd_timeout = "3s"\nrestart_backoff_max = "2s"\nretransmit_base = "500ms"\nretransmit_tries = 3\n' +
      `dpd_action = "${n.name === 'node2' && p.name === 'node3' ? 'trap' : 'restart'}"\n`,
  });
  [n1, n2, n3] = m.nodes as [DaemonNode, DaemonNode, DaemonNode];
  m.startAll();
  await m.waitSettled();
});

afterAll(async () => {
  await lab?.destroy();
});

const peerState = async (n: DaemonNode, peer: DaemonNode) =>
  (await m.status(n))?.peers.find((p) => p.name === peer.name)?.state;

describe('peer daemon stopped with SIGTERM and shutdown = "delete"', () => {
  it('its Deletes make the restart peer re-initiate and the trap peer install traps, without DPD', async () => {
    const termAt = Date.now();
    await m.kill(n3, 'SIGTERM');
    const exitedAt = Date.now();
    expect(n3.proc?.exit?.code).toBe(0);
    // Both survivors learned of the loss from node3's Delete, not from DPD.
    const deleted = (n: DaemonNode) =>
      m.firstLine(
        n,
        (l) => l.peer === n3.name && l.event === 'ike.state' && /deleted by peer/.test(String(l.reason)),
        termAt,
      );
    const d1 = await waitFor('node1 saw the Delete', () => deleted(n1), { timeoutMs: 2000 });
    const d2 = await waitFor('node2 saw the Delete', () => deleted(n2), { timeoutMs: 2000 });
    // restart: node1 re-initiates at once (and keeps trying while node3 is gone).
    const reinit = await waitFor(
      'node1 re-initiates to node3',
      () => m.firstLine(n1, (l) => l.peer === n3.name && l.msg === 'IKE SA created -> connecting', d1.at),
      { timeoutMs: 2000, context: () => m.logs() },
    );
    // node3 is gone: node1 must not hold an IKE SA with it (one that node3 accepted while
    // stopping and then dropped without a Delete would only be found by DPD, 5 s later).
    await sleep(300);
    expect(
      [...(m.ikeSas(n1).get(n3.name)?.live ?? [])],
      `node1 holds IKE SAs with the stopped node3\n${m.logs(15)}`,
    ).toEqual([]);
    expect(['connecting', 'down']).toContain(await peerState(n1, n3));
    // trap: node2 holds trap policies for node3 instead.
    const trapAt = await waitFor('node2 in state trap for node3', async () =>
      (await peerState(n2, n3)) === 'trap' ? Date.now() : undefined,
    );
    expect(
      m.firstLine(n2, (l) => l.peer === n3.name && l.msg === 'IKE SA created -> connecting', d2.at),
    ).toBeUndefined();
    for (const n of [n1, n2])
      expect(m.firstLine(n, (l) => l.event === 'liveness.dead' && l.peer === n3.name, termAt)).toBeUndefined();
    // The rest of the mesh is untouched.
    await m.waitPair(n1, n2, 2000);

    const spawnedAt = m.start(n3);
    await m.ctlUp(n3);
    const upAt = m.firstLine(n3, (l) => /^coatid \S+ started$/.test(l.msg))?.at ?? spawnedAt;
    const flow13 = await m.waitFlow(n1, n3, spawnedAt);
    const flow23 = await m.waitFlow(n2, n3, spawnedAt);
    const settledAt = await m.waitSettled();
    report('8 SIGTERM with shutdown=delete', {
      stop_ms: exitedAt - termAt,
      delete_seen_restart_peer_ms: d1.at - termAt,
      delete_seen_trap_peer_ms: d2.at - termAt,
      reinitiated_after_delete_ms: reinit.at - d1.at,
      trap_state_after_term_ms: trapAt - termAt,
      daemon_start_ms: upAt - spawnedAt,
      flow_restart_peer_after_daemon_up_ms: flow13 - upAt,
      flow_trap_peer_after_daemon_up_ms: flow23 - upAt,
      one_ike_sa_after_daemon_up_ms: settledAt - upAt,
    });
  }, 60_000);
});
