/**
 * An established IKE SA (IKEv2) or ISAKMP SA (IKEv1) expires exactly its lifetime after
 * it was established, as `coatictl status` shows it: both times come from one clock
 * read. Before, the lifetime timer read the clock again, so a millisecond that ticked
 * between the reads made expiresAt - establishedAt = lifetime + 1 ms (seen in CI by
 * daemon-reload.test.ts, which checks a changed ike_lifetime took effect). The test's
 * clock advances 1 ms on every read, so it fails without the single read.
 */
import { describe, expect, it } from 'vitest';
import { Mesh } from '../helpers/ike-pair.js';
import { V1Mesh } from '../helpers/ike1-pair.js';

interface Sa {
  establishedAt: number;
  expireAt: number;
}

describe.each([1, 2] as const)('IKEv%i SA lifetime', (version) => {
  it('expireAt is establishedAt + lifetime, on both ends, even when the clock ticks between reads', async () => {
    const m = version === 1 ? new V1Mesh(7) : new Mesh(7);
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    const life = 3 * 3600_000;
    if (m instanceof V1Mesh) m.pair({ ikeLifetimeMs: life });
    else m.fullMesh({ ikeLifetimeMs: life, start: 'none' });
    const engineA = a.manager as unknown as { initiate(n: string): Promise<unknown>; established(n: string): Sa[] };
    const engineB = b.manager as unknown as { established(n: string): Sa[] };
    // Every read of the clock moves it on by 1 ms (timers still fire by the clock's own time).
    const read = m.clock.now.bind(m.clock);
    let ticks = 0;
    m.clock.now = () => read() + ticks++;
    await engineA.initiate('b');
    await m.settle();
    await m.advance(2000);
    const sas = [...engineA.established('b'), ...engineB.established('a')];
    expect(sas).toHaveLength(2);
    expect(ticks).toBeGreaterThan(10); // the clock did tick
    for (const sa of sas) {
      expect(sa.establishedAt).toBeGreaterThan(0);
      expect(sa.expireAt - sa.establishedAt).toBe(life);
    }
  });
});
