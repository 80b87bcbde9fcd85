/**
 * A stopping daemon takes no new IKE SAs, IKEv2 as IKEv1 (ikev1-stopping.test.ts):
 * Ikev2Manager.refuseNewSas, called by Daemon.stop before the Deletes (shutdown =
 * "delete") or the handover checkpoint (planned restart), stops answering IKE_SA_INIT
 * and starts nothing of its own: no retry, no dead-peer restart, no ACQUIRE, and
 * initiate() refuses. An IKE SA started then would be dropped a moment later without a
 * Delete (or be missing from the checkpoint), and the peer would only find out by DPD.
 * Requests on the SAs that exist are still answered.
 */
import { describe, expect, it } from 'vitest';
import { EXCHANGE } from '../../src/wire/ikev2/index.js';
import { Mesh } from '../helpers/ike-pair.js';

function established() {
  const m = new Mesh(13);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.fullMesh({ start: 'none', dpdAction: 'restart', restartBackoffMaxMs: 2000, dpdDelayMs: 2000, dpdTimeoutMs: 3000 });
  return { m, a, b };
}

/** IKE_SA_INIT requests (exchange type at byte 18, the initiator flag 0x08 and no response flag 0x20 at byte 19). */
const initRequests = (m: Mesh, from: string, since = 0) =>
  m.sent
    .slice(since)
    .filter((w) => w.from.addr === from && w.data[18] === EXCHANGE.IKE_SA_INIT && !(w.data[19]! & 0x20));

describe('Ikev2Manager.refuseNewSas (daemon stopping)', () => {
  it('a Delete from the peer while stopping does not start a new IKE SA (dpd_action = restart)', async () => {
    const { m, a, b } = established();
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.established('b')).toHaveLength(1);
    a.manager.refuseNewSas();
    const sentBefore = m.sent.length;
    await b.manager.terminate('a');
    await m.settle();
    await m.advance(5000);
    expect(a.manager.sasOf('b')).toEqual([]);
    expect(initRequests(m, a.addr, sentBefore)).toEqual([]);
    // Without refuseNewSas the same Delete is followed by a new IKE SA (the test can tell).
    const { m: m2, a: a2, b: b2 } = established();
    await a2.manager.initiate('b');
    await m2.settle();
    const before2 = m2.sent.length;
    await b2.manager.terminate('a');
    await m2.settle();
    await m2.advance(5000);
    expect(initRequests(m2, a2.addr, before2).length).toBeGreaterThan(0);
  });

  it('a dead peer while stopping: no restart; an ACQUIRE starts nothing', async () => {
    const { m, a, b } = established();
    await a.manager.initiate('b');
    await m.settle();
    const reqid = [...(a.manager.peer('b')?.reqids.values() ?? [])][0];
    expect(reqid).toBeDefined();
    a.manager.refuseNewSas();
    const sentBefore = m.sent.length;
    b.up = false;
    await m.advance(15_000);
    expect(a.events.some((e) => e.type === 'liveness.dead')).toBe(true);
    await a.manager.onAcquire(reqid as number);
    await m.advance(5000);
    expect(initRequests(m, a.addr, sentBefore)).toEqual([]);
    expect(a.manager.sasOf('b')).toEqual([]);
  });

  it('IKE_SA_INIT is dropped with a reason, never answered; initiate() refuses; the existing SA still answers', async () => {
    const { m, a, b } = established();
    const c = m.add('c', '10.0.0.3');
    m.fullMesh({ start: 'none' });
    await c.manager.initiate('a');
    await m.settle();
    expect(a.manager.established('c')).toHaveLength(1);
    a.manager.refuseNewSas();
    const fromA = m.sent.length;
    await b.manager.initiate('a');
    await m.settle();
    await m.advance(3000);
    expect(m.sent.slice(fromA).filter((w) => w.from.addr === a.addr && w.to.addr === b.addr)).toEqual([]);
    expect(a.manager.sasOf('b')).toEqual([]);
    const drops = a.events.filter((e) => e.type === 'packet.dropped').map((e) => String(e.reason));
    expect(drops.length).toBeGreaterThan(0);
    expect(drops.every((r) => /refused: IKE_SA_INIT while the daemon is stopping/.test(r))).toBe(true);
    await expect(a.manager.initiate('b')).rejects.toThrow(/daemon is stopping/);
    // c's liveness check on its SA with a is answered: a request on an existing SA.
    const [sa] = c.manager.established('a');
    const verdict = sa?.probe();
    await m.settle();
    expect(await verdict).toBe('alive');
    expect(c.manager.established('a')).toHaveLength(1);
  });
});
