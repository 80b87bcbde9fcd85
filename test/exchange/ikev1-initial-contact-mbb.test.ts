/**
 * INITIAL-CONTACT purge is make-before-break for phase 2: when a restarted peer
 * re-establishes with INITIAL-CONTACT, its old ISAKMP SA goes at once, but the
 * old IPsec SA pair stays in the kernel until a new pair of the same child is
 * installed (or a bounded grace period ends).
 *
 * Found in the qemu VM (test/vm/ikev1.test.ts, restart): the SIGKILLed daemon's
 * kernel SAs survive it, so traffic kept flowing over the old pair while the
 * daemon was down and starting; the survivor deleted its half of that pair as
 * soon as the new ISAKMP SA arrived with INITIAL-CONTACT, ~1 s before the new
 * Quick Mode: a 903 ms outage, 44 datagrams lost each way.
 *
 * The data plane is modelled on the memory kernels: a host sends on its newest
 * outbound SA to the peer (Linux picks the newest), which must exist, keyed, as
 * an inbound SA in the peer's kernel.
 */
import { describe, expect, it } from 'vitest';
import { flushMicrotasks } from '../../src/util/clock.js';
import { installedChildren, V1Mesh, type V1Node } from '../helpers/ike1-pair.js';

/** Whether `from`'s current outbound SA to `to` has a keyed inbound twin in `to`'s kernel. */
async function delivers(from: V1Node, to: V1Node): Promise<boolean> {
  const out = (await from.kernel.listSas()).filter((s) => s.src === from.addr && s.dst === to.addr);
  const cur = out.at(-1);
  if (!cur) return false;
  const twin = await to.kernel.getSa({ dst: to.addr, spi: cur.spi, proto: 'esp' });
  // A larval SA (SPI allocated, no keys yet) has an empty cipher name.
  return twin !== undefined && ('aead' in twin.algorithms || twin.algorithms.crypt.name !== '');
}

async function established(dpdAction: 'restart' | 'clear') {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  m.add('b', '10.0.0.2');
  m.pair({ dpdDelayMs: 0, dpdAction, start: 'none' }, { mode: 'tunnel' });
  await m.node('b').manager.initiate('a'); // a only ever responds
  await m.settle();
  const [old] = installedChildren(a, 'b');
  expect(old).toBeDefined();
  await m.advance(5000);
  // b's daemon dies; its kernel keeps the pair (SIGKILL), its successor starts afresh.
  const b2 = await m.reboot('b', false);
  return { m, a, b2, old: old! };
}

describe('IKEv1 INITIAL-CONTACT: make-before-break for the old pair', () => {
  for (const dpdAction of ['restart', 'clear'] as const) {
    it(`traffic flows both ways at every step of the re-establishment (dpd_action = ${dpdAction})`, async () => {
      const { m, a, b2, old } = await established(dpdAction);
      expect(await delivers(a, b2)).toBe(true);
      expect(await delivers(b2, a)).toBe(true);
      b2.manager.initiate('a').catch(() => {});
      const gaps: string[] = [];
      let sawPurge = false;
      let sawKept = false;
      for (let i = 0; i < 200; i++) {
        if (!m.queue.length) await flushMicrotasks(16);
        if (!m.queue.length) break;
        await m.step();
        await flushMicrotasks(16);
        sawPurge ||= a.events.some((e) => e.type === 'initial_contact.purge');
        // The old ISAKMP SA is gone as far as IKE is concerned, the old pair is still in the kernel.
        if (sawPurge && a.manager.purgedPairs('b').length) {
          sawKept = true;
          expect(a.manager.sasOf('b').every((sa) => ![...sa.children.values()].includes(old))).toBe(true);
        }
        if (!(await delivers(a, b2))) gaps.push(`step ${i}: a -> b`);
        if (!(await delivers(b2, a))) gaps.push(`step ${i}: b -> a`);
      }
      await m.settle();
      expect(sawPurge).toBe(true);
      expect(sawKept).toBe(true);
      expect(gaps, 'steps at which a direction had no working SA').toEqual([]);
      // The replacement is in: the old pair left a's kernel (only the new pair is there) and IKE.
      const ca = installedChildren(a, 'b');
      const cb = installedChildren(b2, 'a');
      expect(ca).toHaveLength(1);
      expect(cb).toHaveLength(1);
      expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
      expect(a.manager.purgedPairs('b')).toEqual([]);
      expect(old.state).toBe('destroyed');
      const spis = (await a.kernel.listSas()).map((s) => s.spi).sort();
      expect(spis).toEqual([ca[0]!.spiIn, ca[0]!.spiOut].sort());
      expect(await a.kernel.getSa({ dst: a.addr, spi: old.spiIn, proto: 'esp' })).toBeUndefined();
      expect(await delivers(a, b2)).toBe(true);
      expect(await delivers(b2, a)).toBe(true);
    });
  }

  it('without a new Quick Mode the kept pair goes after the grace period (policies stay with dpd_action = restart)', async () => {
    const { m, a, b2, old } = await established('restart');
    const policies = (await a.kernel.listPolicies()).length;
    // Quick Mode never gets through (exchange type 32).
    m.filter = (w) => w.data.length < 19 || w.data[18] !== 32;
    b2.manager.initiate('a').catch(() => {});
    await m.settle();
    await m.advance(1000);
    expect(a.events.some((e) => e.type === 'initial_contact.purge')).toBe(true);
    expect(a.manager.purgedPairs('b')).toEqual([old]);
    expect(await a.kernel.getSa({ dst: a.addr, spi: old.spiIn, proto: 'esp' })).toBeDefined();
    await m.advance(20_000);
    expect(a.manager.purgedPairs('b')).toEqual([]);
    expect(old.state).toBe('destroyed');
    expect(await a.kernel.getSa({ dst: a.addr, spi: old.spiIn, proto: 'esp' })).toBeUndefined();
    expect(await a.kernel.getSa({ dst: b2.addr, spi: old.spiOut, proto: 'esp' })).toBeUndefined();
    expect((await a.kernel.listPolicies()).length).toBe(policies);
  });

  it('terminate removes a kept pair at once', async () => {
    const { m, a, b2, old } = await established('clear');
    m.filter = (w) => w.data.length < 19 || w.data[18] !== 32;
    b2.manager.initiate('a').catch(() => {});
    await m.settle();
    expect(a.manager.purgedPairs('b')).toEqual([old]);
    await a.manager.terminate('b');
    expect(a.manager.purgedPairs('b')).toEqual([]);
    expect(await a.kernel.listSas()).toEqual([]);
    expect(await a.kernel.listPolicies()).toEqual([]);
  });
});
