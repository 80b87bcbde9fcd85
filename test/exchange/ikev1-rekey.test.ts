import { describe, expect, it } from 'vitest';
import { deleteChildren } from '../../src/ikev1/informational.js';
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

describe('IKEv1 phase 1 re-negotiation that fails', () => {
  it('is a rekey.failed (Main Mode goes unanswered); the old ISAKMP SA and phase 2 stay', async () => {
    const { m, a, b } = setup({ ikeLifetimeMs: 900_000, rekeyMarginMs: 200_000, rekeyJitter: 0, dpdDelayMs: 0 });
    await a.manager.initiate('b');
    await m.settle();
    const [oldA] = a.manager.established('b');
    // From now on every new Main Mode (its first message, from either side) is lost.
    m.filter = (w) => !(w.data[18] === 2 && w.data.subarray(8, 16).every((x) => x === 0));
    // a re-negotiates at 700 s, b at 800 s; each Main Mode 1 is given up about 63 s later; the hard
    // lifetime is 900 s.
    await m.advance(880_000, 1000);
    const started = a.events.filter((e) => e.type === 'rekey.started' && e.kind === 'ike');
    const failed = a.events.filter((e) => e.type === 'rekey.failed');
    expect(started.length).toBeGreaterThanOrEqual(1);
    expect(failed[0]).toMatchObject({ type: 'rekey.failed', kind: 'ike', peer: 'b', code: 'TIMEOUT' });
    expect(String((failed[0] as { reason?: unknown } | undefined)?.reason)).toMatch(/main-mode timed out/);
    expect(a.events.some((e) => e.type === 'rekey.completed')).toBe(false);
    expect(oldA!.isUp).toBe(true);
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(await hasPair(b, 'a')).toBe(true);
    // b's own re-negotiation (its soft lifetime is half a margin later) failed the same way.
    expect(b.events.filter((e) => e.type === 'rekey.failed')[0]).toMatchObject({ kind: 'ike', code: 'TIMEOUT' });
  });
});

/**
 * A peer that re-keys a phase 2 pair the way charon does in IKEv1: a new Quick Mode, and the old
 * pair left to expire (no DELETE), never re-keyed again. IKEv1 does not say which pair a Quick
 * Mode replaces, so a responder must take the new pair as the peer's current one: keep it, and
 * neither re-key nor keep (by the crossing-streams rule) the old one, which the peer no longer
 * maintains. (Found in interop: coati deleted charon's new pair as a duplicate and kept the old
 * one, which charon then let expire: no pair left on either side.)
 */
describe('IKEv1 rekeying by a peer that leaves the old pair to expire', () => {
  it("the responder keeps the peer's new pair, does not re-key the old one, drops it after the long grace, 10 seeds", async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ dpdDelayMs: 0, ikeLifetimeMs: 24 * 3600_000 }, { lifetimeMs: 120_000, rekeyMarginMs: 20_000 });
      await a.manager.initiate('b');
      await m.settle();
      const [oldB] = installedChildren(b, 'a');
      const [oldA] = installedChildren(a, 'b');
      // b re-keys at 10 s; its DELETE for the old pair never arrives (charon sends none).
      let lossy = false;
      m.filter = (w) => !(lossy && w.from.addr === b.addr && w.data.length > 28 && w.data[18] === 5);
      await m.advance(10_000, 1000);
      lossy = true;
      const bSa = b.manager.established('a')[0]!;
      await bSa.queue.run(() => bSa.rekeyChild!(oldB!));
      await m.settle();
      const fresh = installedChildren(b, 'a').find((c) => c !== oldB)!;
      expect(fresh, `seed ${seed}`).toBeDefined();
      const ctx = `seed ${seed}`;
      // Until past a's soft lifetime for the old pair (~100 s); b's new pair re-keys at ~110 s.
      for (let t = 10_000; t < 105_000; t += 1000) {
        await m.advance(1000, 1000);
        const newA = installedChildren(a, 'b').find((c) => c.spiIn === fresh.spiOut);
        expect(newA, `${ctx} at ${t} ms: a still holds b's new pair`).toBeDefined();
        expect(fresh.state, `${ctx} at ${t} ms`).toBe('installed');
      }
      expect(
        a.events.filter((e) => e.type === 'duplicate.deleted'),
        ctx,
      ).toEqual([]);
      // a never re-keyed the pair b replaced, and dropped it after the long grace.
      expect(
        a.events.filter((e) => e.type === 'rekey.started'),
        ctx,
      ).toEqual([]);
      expect(oldA!.state, ctx).toBe('destroyed');
    }
  }, 60_000);
});

describe('IKEv1 phase 1 re-negotiation timing', () => {
  it('the initiator re-negotiates first: the responder soft lifetime is half a margin later, 10 seeds', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ ikeLifetimeMs: 120_000, rekeyMarginMs: 20_000, rekeyJitter: 0.2, dpdDelayMs: 0 });
      await a.manager.initiate('b');
      await m.settle();
      const [first] = b.manager.established('a');
      // The responder's soft lifetime is at 110 s at the earliest, the initiator's at 100-104 s.
      expect(first!.rekeyAt - first!.establishedAt, `seed ${seed}`).toBeGreaterThanOrEqual(110_000);
      await m.advance(108_000, 1000);
      const started = (n: V1Node) => n.events.filter((e) => e.type === 'rekey.started' && e.kind === 'ike').length;
      expect([started(a), started(b)], `seed ${seed}`).toEqual([1, 0]);
      expect(a.manager.established('b'), `seed ${seed}`).toHaveLength(1);
      expect(b.manager.established('a'), `seed ${seed}`).toHaveLength(1);
    }
  });
});

describe('IKEv1 phase 2 soft lifetime under a short lifetime', () => {
  it('a lifetime shorter than the margin re-keys at half of it (initiator), three quarters (responder), not after 1 s', async () => {
    const { m, a, b } = setup({ dpdDelayMs: 0 }, { lifetimeMs: 6000, rekeyMarginMs: 540_000 });
    await a.manager.initiate('b');
    await m.settle();
    const [ca] = installedChildren(a, 'b');
    const [cb] = installedChildren(b, 'a');
    expect(ca!.rekeyAt - ca!.createdAt).toBe(3000);
    expect(cb!.rekeyAt - cb!.createdAt).toBe(4500);
    await m.advance(2500, 250);
    expect(a.events.filter((e) => e.type === 'rekey.started')).toEqual([]);
    expect(b.events.filter((e) => e.type === 'rekey.started')).toEqual([]);
    await m.advance(1000, 250);
    // The initiator re-keyed (make-before-break); the responder took the new pair as the re-key.
    expect(a.events.filter((e) => e.type === 'rekey.started')).toHaveLength(1);
    expect(b.events.filter((e) => e.type === 'rekey.started')).toEqual([]);
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(installedChildren(b, 'a')).toHaveLength(1);
  });
});

describe('IKEv1 pair superseded by the peer, then its replacement deleted', () => {
  it('the superseded pair is current again: it is re-keyed at its soft lifetime', async () => {
    const { m, a, b } = setup(
      { dpdDelayMs: 0, ikeLifetimeMs: 24 * 3600_000 },
      { lifetimeMs: 120_000, rekeyMarginMs: 20_000 },
    );
    await a.manager.initiate('b');
    await m.settle();
    const [oldA] = installedChildren(a, 'b');
    const [oldB] = installedChildren(b, 'a');
    await m.advance(10_000, 1000);
    // b re-keys without a DELETE for the old pair (as charon does) ...
    m.filter = (w) => !(w.from.addr === b.addr && w.data.length > 28 && w.data[18] === 5);
    const bSa = b.manager.established('a')[0]!;
    await bSa.queue.run(() => bSa.rekeyChild!(oldB!));
    await m.settle();
    expect(oldA!.replacedBy).toBeDefined();
    // ... then deletes the new pair (a crossing loser on its side): a's old pair is current again.
    m.filter = undefined;
    const fresh = installedChildren(b, 'a').find((c) => c !== oldB)!;
    await bSa.queue.run(() => deleteChildren(bSa, [fresh], 'test: duplicate'));
    await m.settle();
    expect(oldA!.state).toBe('installed');
    expect(oldA!.replacedBy).toBeUndefined();
    expect(a.events.filter((e) => e.type === 'rekey.started')).toEqual([]);
    await m.advance(95_000, 1000);
    expect(a.events.filter((e) => e.type === 'rekey.started' && e.kind === 'child')).toHaveLength(1);
    expect(installedChildren(a, 'b').some((c) => c !== oldA)).toBe(true);
  });
});
