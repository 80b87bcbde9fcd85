/**
 * Re-establishing a wanted IKEv2 relationship (dpd_action = restart) across a long
 * partition: the restart backoff counts from the failed attempt's last transmission,
 * not from the moment the attempt gave up. Otherwise the final retransmission wait and
 * the backoff add up to a silence towards the peer, and a partition that heals in it
 * stays unnoticed until the next IKE_SA_INIT goes out (scenario 3: "flowing again
 * ~1 s after the heal"). The IKEv1 twin is ikev1-restart-backoff.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRANSMIT } from '../../src/ikev2/retransmit.js';
import { Mesh } from '../helpers/ike-pair.js';

const RETRANSMIT = { ...DEFAULT_RETRANSMIT, baseMs: 500, factor: 1.8, tries: 3 };
/** The longest single retransmission wait: 500 ms * 1.8^3. */
const LONGEST_WAIT = 500 * 1.8 ** 3;

describe('IKEv2 restart after a dead peer: no silence longer than one retransmission wait', () => {
  it('keeps IKE_SA_INIT going out at least every retransmission wait while partitioned, and is back on heal', async () => {
    const m = new Mesh(7);
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.fullMesh({
      dpdDelayMs: 2000,
      dpdTimeoutMs: 3000,
      dpdAction: 'restart',
      restartBackoffMaxMs: 2000,
      retransmit: RETRANSMIT,
    });
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.established('b')).toHaveLength(1);
    const sends: number[] = [];
    m.filter = (w) => {
      if (w.from.addr === a.addr) sends.push(m.clock.now());
      return false;
    };
    await m.advance(40_000, 25);
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    // Several attempts timed out (so the backoff is at its 2 s cap by the end).
    expect(a.events.filter((e) => e.type === 'handshake.failed').length).toBeGreaterThanOrEqual(4);
    const gaps = sends.slice(1).map((t, i) => t - (sends[i] as number));
    expect(Math.max(...gaps)).toBeLessThanOrEqual(LONGEST_WAIT + 25);
    // Healed: the next IKE_SA_INIT gets through and the relationship is back.
    m.filter = undefined;
    await m.advance(LONGEST_WAIT + 1000, 25);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(b.manager.established('a')).toHaveLength(1);
  });
});
