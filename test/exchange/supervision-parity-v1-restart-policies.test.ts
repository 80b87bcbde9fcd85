/**
 * IKEv1 counterpart of ikev2-responder-restart-policies.test.ts: a relationship this side
 * only ever answered (the peer initiated; start = "none" here) with dpd_action = "restart".
 * When the peer is declared dead its policies must stay (as traps) while this side
 * re-initiates; if the peer is only marked wanted after its ISAKMP SA (and with it the
 * last phase 2 pair) went, the teardown releases the policies first and the protected
 * traffic has no policy at all (leaves in clear text) until the new Main Mode's traps.
 */
import { describe, expect, it } from 'vitest';
import { installedChildren, V1Mesh } from '../helpers/ike1-pair.js';

describe('IKEv1 responder-only relationship, dpd_action = restart', () => {
  it('keeps its out/in/fwd policies from the dead declaration until the new pair is installed', async () => {
    const m = new V1Mesh(11);
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ start: 'none', dpdDelayMs: 2000, dpdTimeoutMs: 3000, dpdAction: 'restart', restartBackoffMaxMs: 1000 });
    await b.manager.initiate('a'); // a only answers
    await m.settle();
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(a.manager.peer('b')?.wantUp).toBe(false);
    const full = (await a.kernel.listPolicies()).length;
    expect(full).toBeGreaterThanOrEqual(2);
    b.up = false; // b's daemon is gone
    const counts: number[] = [];
    for (let t = 0; t < 15_000; t += 100) {
      await m.advance(100, 25);
      counts.push((await a.kernel.listPolicies()).length);
    }
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    expect(Math.min(...counts)).toBe(full);
    b.up = true; // a re-initiates (b's own restart attempts cross it)
    await m.advance(20_000, 25);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(installedChildren(a, 'b')).toHaveLength(1);
  });
});
