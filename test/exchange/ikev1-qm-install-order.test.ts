/**
 * Quick Mode install order: each side's kernel sends on the new pair as soon
 * as its outbound SA is in (initiator: after sending QM3, responder: when QM3
 * arrives), so the other side's inbound SA must already be keyed: the
 * responder keys its inbound SA before sending QM2, the initiator before
 * sending QM3; outbound SAs and policies follow.
 *
 * Found in the qemu VM (test/vm/ikev1.test.ts, rekey): under load the
 * responder processed QM3 after the first ESP packets on the new SPI had
 * arrived; they met a larval SA and were dropped (1-2 datagrams of a 20 ms
 * stream per rekey, initiator -> responder direction); with that fixed, the
 * initiator's own inbound SA lagged the same way (2 datagrams responder ->
 * initiator in one rekey).
 */
import { describe, expect, it } from 'vitest';
import type { SaInfo } from '../../src/kernel/types.js';
import { V1ExchangeType } from '../../src/wire/ikev1/index.js';
import { installedChildren, V1Mesh, type Wire } from '../helpers/ike1-pair.js';

const isQuickMode = (w: Wire) => w.data.length >= 28 && w.data[18] === V1ExchangeType.QUICK_MODE;
const mid = (w: Wire) => w.data.readUInt32BE(20);
/** A keyed SA (the memory kernel's larval SAs from allocSpi have empty algorithm names). */
const keyed = (sa: SaInfo | undefined) => !!sa && 'crypt' in sa.algorithms && sa.algorithms.crypt.name !== '';

describe('IKEv1 Quick Mode install order', () => {
  for (const pfs of [true, false])
    it(`the responder's inbound SA is keyed before QM3 arrives (rekey, ${pfs ? 'PFS' : 'no PFS'})`, async () => {
      const m = new V1Mesh();
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair(
        { dpdDelayMs: 0 },
        pfs
          ? { lifetimeMs: 60_000, rekeyMarginMs: 10_000 }
          : {
              lifetimeMs: 60_000,
              rekeyMarginMs: 10_000,
              espProposals: [{ encr: [{ id: 12, keyLen: 128 }], integ: [12], ke: [], esn: [false] }],
            },
      );
      await a.manager.initiate('b');
      await m.settle();
      const [old] = installedChildren(a, 'b');
      expect(old).toBeDefined();

      // Hold a's QM3 of the rekey (a's second Quick Mode message with one message ID).
      const seen = new Map<number, number>();
      let held: Wire | undefined;
      m.filter = (w) => {
        if (w.from.addr !== a.addr || !isQuickMode(w)) return true;
        const n = (seen.get(mid(w)) ?? 0) + 1;
        seen.set(mid(w), n);
        if (n === 2 && !held) {
          held = w;
          return false;
        }
        return true;
      };
      for (let t = 0; t < 70_000 && !held; t += 500) await m.advance(500, 500);
      expect(held, 'a sent QM3 of a rekey').toBeDefined();

      // a has installed the new pair: its kernel now sends on the new outbound SPI.
      const fresh = installedChildren(a, 'b').find((c) => c.spiOut !== old?.spiOut);
      expect(fresh).toBeDefined();
      const out = await a.kernel.getSa({ dst: b.addr, spi: fresh!.spiOut, proto: 'esp' });
      expect(keyed(out)).toBe(true);
      // ...and b, which has not seen QM3, can already decrypt it.
      const inB = await b.kernel.getSa({ dst: b.addr, spi: fresh!.spiOut, proto: 'esp' });
      expect(inB, 'b has an SA for the new SPI').toBeDefined();
      expect(keyed(inB), "b's inbound SA for the new SPI is keyed before QM3").toBe(true);
      // b's outbound SA of the new pair waits for QM3 (a cannot decrypt before it has sent QM3 anyway).
      expect(await b.kernel.getSa({ dst: a.addr, spi: fresh!.spiIn, proto: 'esp' })).toBeUndefined();

      // QM3 arrives: b completes the pair; one pair per side afterwards, SPIs crosswise.
      m.filter = undefined;
      m.queue.push(held!);
      await m.settle();
      await m.advance(3000);
      const ca = installedChildren(a, 'b');
      const cb = installedChildren(b, 'a');
      expect(ca).toHaveLength(1);
      expect(cb).toHaveLength(1);
      expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
      expect(ca[0]!.spiOut).toBe(cb[0]!.spiIn);
      expect(ca[0]!.spiOut).toBe(fresh!.spiOut);
      const kb = await b.kernel.listSas();
      expect(kb.map((s) => s.spi).sort()).toEqual([cb[0]!.spiIn, cb[0]!.spiOut].sort());
      expect((await b.kernel.listPolicies()).length).toBeGreaterThan(0);
    });

  it("the initiator's inbound SA is keyed before QM3 leaves (the responder sends on the new pair once QM3 is in)", async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 }, { lifetimeMs: 60_000, rekeyMarginMs: 10_000 });
    await a.manager.initiate('b');
    await m.settle();
    const [old] = installedChildren(a, 'b');
    const seen = new Map<number, number>();
    // a's kernel as it is at the moment QM3 is sent (the memory kernel reads its tables synchronously).
    let atQm3: Promise<SaInfo[]> | undefined;
    m.filter = (w) => {
      if (w.from.addr !== a.addr || !isQuickMode(w)) return true;
      const n = (seen.get(mid(w)) ?? 0) + 1;
      seen.set(mid(w), n);
      if (n === 2 && !atQm3) atQm3 = a.kernel.listSas();
      return true;
    };
    for (let t = 0; t < 70_000 && !atQm3; t += 500) await m.advance(500, 500);
    expect(atQm3, 'a sent QM3 of a rekey').toBeDefined();
    const inbound = (await atQm3!).filter((s) => s.dst === a.addr && s.spi !== old!.spiIn);
    expect(inbound, 'the new inbound SA exists when QM3 is sent').toHaveLength(1);
    expect(keyed(inbound[0]), "a's new inbound SA is keyed when QM3 is sent").toBe(true);
    await m.advance(3000);
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(installedChildren(a, 'b')[0]!.spiIn).toBe(inbound[0]!.spi);
  });

  it('a responder that never gets QM3 removes the inbound SA it installed at QM2', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 });
    const seen = new Map<number, number>();
    m.filter = (w) => {
      if (w.from.addr !== a.addr || !isQuickMode(w)) return true;
      const n = (seen.get(mid(w)) ?? 0) + 1;
      seen.set(mid(w), n);
      return n < 2; // every QM3 (and its retransmits) is lost
    };
    a.manager.initiate('b').catch(() => {});
    await m.settle();
    expect((await b.kernel.listSas()).some(keyed)).toBe(true);
    await m.advance(120_000, 1000);
    expect(installedChildren(b, 'a')).toHaveLength(0);
    // Nothing of the abandoned Quick Mode is left in b's kernel.
    expect(await b.kernel.listSas()).toEqual([]);
  });
});
