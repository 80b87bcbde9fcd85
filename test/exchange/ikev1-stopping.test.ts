/**
 * A stopping daemon takes no new ISAKMP SAs (Ikev1Manager.refuseNewSas, called by
 * Daemon.stop like the IKEv2 manager's): one accepted or started while stopping would
 * be torn down without a DELETE a moment later, and the peer would only find out by DPD.
 */
import { describe, expect, it } from 'vitest';
import { installedChildren, V1Mesh } from '../helpers/ike1-pair.js';

function established() {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.pair({ dpdAction: 'restart', restartBackoffMaxMs: 2000 });
  return { m, a, b };
}

describe('Ikev1Manager.refuseNewSas (daemon stopping)', () => {
  it('a DELETE from the peer while stopping does not start a new ISAKMP SA (dpd_action = restart)', async () => {
    const { m, a, b } = established();
    await a.manager.initiate('b');
    await m.settle();
    expect(installedChildren(a, 'b')).toHaveLength(1);
    a.manager.refuseNewSas();
    const sentBefore = m.sent.length;
    await b.manager.terminate('a');
    await m.settle();
    await m.advance(5000);
    expect(a.events.some((e) => e.type === 'delete.received')).toBe(true);
    expect(a.manager.sasOf('b')).toEqual([]);
    // No Main Mode (exchange type 2) from a after the DELETE.
    expect(m.sent.slice(sentBefore).filter((w) => w.from.addr === a.addr && w.data[18] === 2)).toEqual([]);
  });

  it('a first Main Mode message is dropped with a reason, never answered; initiate() refuses', async () => {
    const { m, a, b } = established();
    a.manager.refuseNewSas();
    const fromA = () => m.sent.filter((w) => w.from.addr === a.addr).length;
    await b.manager.initiate('a');
    await m.settle();
    await m.advance(3000);
    expect(fromA()).toBe(0);
    expect(a.manager.sasOf('b')).toEqual([]);
    expect(b.manager.established('a')).toEqual([]);
    const drops = a.events.filter((e) => e.type === 'packet.dropped').map((e) => String(e.reason));
    expect(drops.length).toBeGreaterThan(0);
    expect(drops.every((r) => /refused: the daemon is stopping/.test(r))).toBe(true);
    await expect(a.manager.initiate('b')).rejects.toThrow(/daemon is stopping/);
    // Without refuseNewSas the same Main Mode is answered (the test can tell).
    const { m: m2, a: a2, b: b2 } = established();
    await b2.manager.initiate('a');
    await m2.settle();
    expect(a2.manager.established('b')).toHaveLength(1);
  });
});
