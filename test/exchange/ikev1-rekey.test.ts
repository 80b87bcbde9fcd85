import { describe, expect, it } from 'vitest';
import { installedChildren, V1Mesh, type V1Node } from '../helpers/ike1-pair.js';

function setup(over = {}, child = {}) {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.pair(over, child);
  return { m, a, b };
}

/** A usable SA pair exists in the node's kernel (outbound and inbound of one child, both complete). */
async function hasPair(n: V1Node, peer: string): Promise<boolean> {
  for (const sa of n.manager.sasOf(peer)) {
    for (const c of sa.children.values()) {
      if (c.state === 'destroyed' || c.state === 'creating') continue;
      const i = await n.kernel.getSa({ dst: sa.local.addr, spi: c.spiIn, proto: 'esp' });
      const o = await n.kernel.getSa({ dst: sa.remote.addr, spi: c.spiOut, proto: 'esp' });
      if (i && o && 'crypt' in i.algorithms && 'crypt' in o.algorithms) return true;
    }
  }
  return false;
}

describe('IKEv1 rekeying', () => {
  it('Quick Mode rekey is make-before-break: new pair installed, old deleted, the kernel never without a pair', async () => {
    const { m, a, b } = setup({ dpdDelayMs: 0 }, { lifetimeMs: 60_000, rekeyMarginMs: 10_000 });
    await a.manager.initiate('b');
    await m.settle();
    const [old] = installedChildren(a, 'b');
    for (let t = 0; t < 70_000; t += 500) {
      await m.advance(500, 500);
      expect(await hasPair(a, 'b')).toBe(true);
      expect(await hasPair(b, 'a')).toBe(true);
    }
    const ca = installedChildren(a, 'b');
    const cb = installedChildren(b, 'a');
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.spiIn).not.toBe(old!.spiIn);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    expect(ca[0]!.spiOut).toBe(cb[0]!.spiIn);
    expect(ca[0]!.reqid).toBe(old!.reqid);
    expect(await a.kernel.listSas()).toHaveLength(2);
    expect(await b.kernel.listSas()).toHaveLength(2);
    expect(a.events.filter((e) => e.type === 'rekey.completed').length).toBeGreaterThanOrEqual(1);
    expect(b.events.some((e) => e.type === 'delete.received' && e.what === 'esp')).toBe(true);
    // Still one ISAKMP SA each.
    expect(a.manager.established('b')).toHaveLength(1);
  });

  it('a longer offered lifetime is cut by RESPONDER-LIFETIME', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    const { v1Policy } = await import('../helpers/ike1-pair.js');
    a.manager.setPeer(v1Policy(a, b, {}, { lifetimeMs: 7200_000 }));
    b.manager.setPeer(v1Policy(b, a, {}, { lifetimeMs: 1800_000 }));
    await a.manager.initiate('b');
    await m.settle();
    const [ca] = installedChildren(a, 'b');
    const [cb] = installedChildren(b, 'a');
    expect(ca!.expireAt - ca!.createdAt).toBe(1800_000);
    expect(cb!.expireAt - cb!.createdAt).toBe(1800_000);
  });

  it('phase 1 re-negotiation: a new ISAKMP SA takes over, the old one is deleted, phase 2 stays untouched', async () => {
    const { m, a, b } = setup({ ikeLifetimeMs: 120_000, rekeyMarginMs: 20_000, dpdDelayMs: 0 });
    await a.manager.initiate('b');
    await m.settle();
    const [oldA] = a.manager.established('b');
    const [child] = installedChildren(a, 'b');
    const sasBefore = (await a.kernel.listSas()).map((s) => s.spi).sort();
    for (let t = 0; t < 110_000; t += 1000) {
      await m.advance(1000, 500);
      expect(await hasPair(a, 'b')).toBe(true);
      expect(await hasPair(b, 'a')).toBe(true);
    }
    const [newA] = a.manager.established('b');
    expect(a.manager.established('b')).toHaveLength(1);
    expect(b.manager.established('a')).toHaveLength(1);
    expect(newA).not.toBe(oldA);
    expect(oldA!.state).toBe('destroyed');
    expect(newA!.cookieI.equals(b.manager.established('a')[0]!.cookieI)).toBe(true);
    expect(newA!.children.get(child!.uid)).toBe(child);
    expect((await a.kernel.listSas()).map((s) => s.spi).sort()).toEqual(sasBefore);
    expect([...a.events, ...b.events].some((e) => e.type === 'delete.received' && e.what === 'isakmp')).toBe(true);
    // No INITIAL-CONTACT on the re-negotiation, so b kept the phase 2 SAs.
    expect(installedChildren(b, 'a')).toHaveLength(1);
    expect(b.events.some((e) => e.type === 'initial_contact.purge')).toBe(false);
  });
});
