/**
 * A relationship this side only ever answered (the peer initiated; start = "none" here)
 * with dpd_action = "restart": when the peer is declared dead, its policies must stay (as
 * traps) while this side re-initiates. Found in qemu (test/vm/daemon.test.ts scenario 1):
 * the SA's teardown released the policies before the restart made the peer "wanted", so
 * for ~3 s the protected traffic had no policy at all.
 */
import { describe, expect, it } from 'vitest';
import { Mesh } from '../helpers/ike-pair.js';

describe('IKEv2 responder-only relationship, dpd_action = restart', () => {
  it('keeps its out/in/fwd policies from the dead declaration until the new pair is installed', async () => {
    const m = new Mesh(11);
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.fullMesh({ dpdDelayMs: 2000, dpdTimeoutMs: 3000, dpdAction: 'restart', restartBackoffMaxMs: 1000 });
    await b.manager.initiate('a'); // a only answers
    await m.settle();
    expect(a.manager.peer('b')?.wantUp).toBe(false);
    const full = (await a.kernel.listPolicies()).length;
    expect(full).toBeGreaterThanOrEqual(2);
    b.up = false; // b's daemon is gone
    const counts: number[] = [];
    for (let t = 0; t < 12_000; t += 100) {
      await m.advance(100, 25);
      counts.push((await a.kernel.listPolicies()).length);
    }
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    expect(Math.min(...counts)).toBe(full);
    b.up = true; // both re-initiate: the crossing-streams rule keeps one IKE SA
    await m.advance(15_000, 25);
    expect(a.manager.established('b')).toHaveLength(1);
  });
});
