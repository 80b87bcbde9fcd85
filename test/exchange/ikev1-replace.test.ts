/**
 * `Ikev1Manager.replace`: a changed IKEv1 peer (a reload) gets a new ISAKMP SA and new phase
 * 2 pairs before the old ones are deleted, so the kernel always holds a usable pair. Before,
 * a reload deleted the old SAs first and negotiated anew: a gap in traffic on every changed
 * relationship (a change of the mesh defaults changes all of them, on every host).
 */
import { describe, expect, it } from 'vitest';
import type { V1Node } from '../helpers/ike1-pair.js';
import { ESP_GCM256, installedChildren, V1Mesh, v1Policy } from '../helpers/ike1-pair.js';

function setup(seed = 5) {
  const m = new V1Mesh(seed);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  m.pair({ start: 'none', dpdDelayMs: 0 });
  return { m, a, b };
}

/** A usable pair in the node's kernel: an inbound and an outbound SA of one phase 2 SA, both keyed. */
async function usablePair(n: V1Node, peer: string): Promise<boolean> {
  for (const sa of n.manager.sasOf(peer))
    for (const c of sa.children.values()) {
      if (c.state !== 'installed' && c.state !== 'rekeying' && c.state !== 'rekeyed') continue;
      const i = await n.kernel.getSa({ dst: sa.local.addr, spi: c.spiIn, proto: 'esp' });
      const o = await n.kernel.getSa({ dst: sa.remote.addr, spi: c.spiOut, proto: 'esp' });
      // (A larval SA, from allocSpi, has an empty cipher name.)
      const keyed = (x: typeof i) =>
        x !== undefined && (('crypt' in x.algorithms && x.algorithms.crypt.name !== '') || 'aead' in x.algorithms);
      if (keyed(i) && keyed(o)) return true;
    }
  return false;
}

/** Runs `p` to its end one datagram (or 50 ms) at a time, checking both kernels after each step. */
async function stepThrough(m: V1Mesh, p: Promise<unknown>, check: () => Promise<void>): Promise<void> {
  let done = false;
  void p.finally(() => {
    done = true;
  });
  for (let i = 0; i < 5000 && !done; i++) {
    if (m.queue.length) await m.step();
    else await m.advance(50);
    await check();
  }
  expect(done).toBe(true);
}

describe('IKEv1 replacement after a configuration change', () => {
  it('new ISAKMP SA and pair first, then the old ones go: never without a usable pair on either side', async () => {
    const { m, a, b } = setup();
    await a.manager.initiate('b');
    await m.settle();
    const [oldA] = a.manager.established('b');
    const [oldB] = b.manager.established('a');
    const [oldPair] = installedChildren(a, 'b');
    expect(oldPair?.suite.encr.id).toBe(12);
    // Both ends now want AES-GCM phase 2 SAs.
    a.manager.setPeer(v1Policy(a, b, { start: 'none', dpdDelayMs: 0 }, { espProposals: [ESP_GCM256] }));
    b.manager.setPeer(v1Policy(b, a, { start: 'none', dpdDelayMs: 0 }, { espProposals: [ESP_GCM256] }));
    let gaps = 0;
    await stepThrough(m, a.manager.replace('b'), async () => {
      if (!(await usablePair(a, 'b')) || !(await usablePair(b, 'a'))) gaps++;
    });
    expect(gaps).toBe(0);
    await m.settle();
    await m.advance(60_000, 1000);
    // One ISAKMP SA on each side, the new one, the same on both.
    const [newA] = a.manager.established('b');
    const [newB] = b.manager.established('a');
    expect(a.manager.sasOf('b')).toHaveLength(1);
    expect(b.manager.sasOf('a')).toHaveLength(1);
    expect(newA).not.toBe(oldA);
    expect(oldA!.state).toBe('destroyed');
    expect(oldB!.state).toBe('destroyed');
    expect(newA!.cookieI.equals(newB!.cookieI)).toBe(true);
    // One pair, with the new settings, the same on both sides; the kernels hold only it.
    const [pa] = installedChildren(a, 'b');
    const [pb] = installedChildren(b, 'a');
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(installedChildren(b, 'a')).toHaveLength(1);
    expect(pa!.suite.encr.id).toBe(20);
    expect([pa!.spiIn, pa!.spiOut]).toEqual([pb!.spiOut, pb!.spiIn]);
    expect((await a.kernel.listSas()).map((s) => s.spi).sort()).toEqual([pa!.spiIn, pa!.spiOut].sort());
    expect((await b.kernel.listSas()).map((s) => s.spi).sort()).toEqual([pb!.spiIn, pb!.spiOut].sort());
    // Not a loss of state to the peer: no INITIAL-CONTACT purge, no duplicate deleted by the crossing rule.
    for (const n of [a, b]) {
      expect(n.events.some((e) => e.type === 'initial_contact.purge')).toBe(false);
      expect(n.events.some((e) => e.type === 'duplicate.deleted')).toBe(false);
    }
  });

  it('a slow replacement (its Quick Mode retransmitted past the crossing rule grace): the rule leaves the retiring SAs alone, 6 seeds', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const { m, a, b } = setup(seed);
      await a.manager.initiate('b');
      await m.settle();
      const [oldA] = a.manager.established('b');
      a.manager.setPeer(v1Policy(a, b, { start: 'none', dpdDelayMs: 0 }, { espProposals: [ESP_GCM256] }));
      b.manager.setPeer(v1Policy(b, a, { start: 'none', dpdDelayMs: 0 }, { espProposals: [ESP_GCM256] }));
      // The new ISAKMP SA's first two QM2s are lost: its pair comes about 3 s after it (grace: 1.5-2.5 s).
      let lost = 0;
      m.filter = (w) => {
        const qm2 = w.from.addr === b.addr && w.data[18] === 32 && !w.data.subarray(0, 8).equals(oldA!.cookieI);
        return !(qm2 && lost++ < 2);
      };
      let gaps = 0;
      await stepThrough(m, a.manager.replace('b'), async () => {
        if (!(await usablePair(a, 'b')) || !(await usablePair(b, 'a'))) gaps++;
      });
      expect(lost, `seed ${seed}`).toBeGreaterThanOrEqual(2);
      expect(gaps, `seed ${seed}`).toBe(0);
      await m.advance(60_000, 1000);
      expect(a.manager.sasOf('b'), `seed ${seed}`).toHaveLength(1);
      expect(a.manager.established('b')[0], `seed ${seed}`).not.toBe(oldA);
      expect(
        installedChildren(a, 'b').map((c) => c.suite.encr.id),
        `seed ${seed}`,
      ).toEqual([20]);
      expect(
        a.events.some((e) => e.type === 'duplicate.deleted'),
        `seed ${seed}`,
      ).toBe(false);
    }
  });

  it('a child whose new pair does not come keeps its old pair on the new ISAKMP SA', async () => {
    const { m, a, b } = setup();
    await a.manager.initiate('b');
    await m.settle();
    const [oldPair] = installedChildren(a, 'b');
    // a now offers only AES-GCM; b still accepts only AES-CBC: the Quick Modes fail.
    a.manager.setPeer(v1Policy(a, b, { start: 'none', dpdDelayMs: 0 }, { espProposals: [ESP_GCM256] }));
    let gaps = 0;
    await stepThrough(m, a.manager.replace('b', 10_000), async () => {
      if (!(await usablePair(a, 'b')) || !(await usablePair(b, 'a'))) gaps++;
    });
    expect(gaps).toBe(0);
    await m.advance(30_000, 1000);
    expect(a.manager.sasOf('b')).toHaveLength(1);
    expect(b.manager.sasOf('a')).toHaveLength(1);
    const [newA] = a.manager.established('b');
    expect(newA!.children.get(oldPair!.uid)).toBe(oldPair);
    expect(installedChildren(a, 'b')).toEqual([oldPair]);
    expect(installedChildren(b, 'a').map((c) => c.spiIn)).toEqual([oldPair!.spiOut]);
    expect(await usablePair(a, 'b')).toBe(true);
    expect(await usablePair(b, 'a')).toBe(true);
  });

  it('a new ISAKMP SA that does not come up changes nothing: the old SAs stay and are not retiring', async () => {
    const { m, a, b } = setup();
    await a.manager.initiate('b');
    await m.settle();
    const [oldA] = a.manager.established('b');
    const [oldPair] = installedChildren(a, 'b');
    // Every new Main Mode is lost.
    m.filter = (w) => !(w.data[18] === 2 && w.data.subarray(8, 16).every((x) => x === 0));
    await stepThrough(m, a.manager.replace('b', 10_000), async () => {});
    expect(a.manager.sasOf('b')).toEqual([oldA]);
    expect(oldA!.retiring).toBe(false);
    expect(installedChildren(a, 'b')).toEqual([oldPair]);
    expect(await usablePair(b, 'a')).toBe(true);
  });
});
