/**
 * IKEv1 crossing streams: both ends initiate at the same moment. Both keep the
 * ISAKMP SA with the greatest cookieI|cookieR and the phase 2 pair with the
 * greatest [max(spi), min(spi)], so each pair of nodes converges on exactly one
 * of each, whatever the order the datagrams arrive in.
 */
import { describe, expect, it } from 'vitest';
import { pairRank } from '../../src/ikev1/duplicates.js';
import { flushMicrotasks } from '../../src/util/clock.js';
import { mulberry32 } from '../helpers/ike-pair.js';
import { installedChildren, V1Mesh, type V1Node, type Wire } from '../helpers/ike1-pair.js';

const pairs = (m: V1Mesh) => {
  const out: [V1Node, V1Node][] = [];
  const ns = [...m.nodes.values()];
  for (let i = 0; i < ns.length; i++) for (let j = i + 1; j < ns.length; j++) out.push([ns[i]!, ns[j]!]);
  return out;
};

/** Exactly one ISAKMP SA and one phase 2 pair per pair of nodes, matching crosswise, kernels to match. */
async function converged(m: V1Mesh): Promise<string[]> {
  const problems: string[] = [];
  for (const [a, b] of pairs(m)) {
    const sa = a.manager.established(b.name);
    const sb = b.manager.established(a.name);
    const all = [a.manager.sasOf(b.name).length, b.manager.sasOf(a.name).length];
    if (sa.length !== 1 || sb.length !== 1 || all[0] !== 1 || all[1] !== 1) {
      problems.push(`${a.name}-${b.name}: ${sa.length}/${sb.length} ISAKMP SAs up, ${all.join('/')} in all`);
      continue;
    }
    if (!sa[0]!.cookieI.equals(sb[0]!.cookieI) || !sa[0]!.cookieR.equals(sb[0]!.cookieR))
      problems.push(`${a.name}-${b.name}: different ISAKMP SAs`);
    const ca = installedChildren(a, b.name);
    const cb = installedChildren(b, a.name);
    if (ca.length !== 1 || cb.length !== 1 || ca[0]!.spiIn !== cb[0]!.spiOut || ca[0]!.spiOut !== cb[0]!.spiIn) {
      problems.push(`${a.name}-${b.name}: phase 2 pairs ${ca.length}/${cb.length}`);
      continue;
    }
    if (!ca[0]!.keysOut.encKey.equals(cb[0]!.keysIn.encKey)) problems.push(`${a.name}-${b.name}: keys differ`);
    // Every child lives on the surviving ISAKMP SA.
    if (!sa[0]!.children.has(ca[0]!.uid) || !sb[0]!.children.has(cb[0]!.uid))
      problems.push(`${a.name}-${b.name}: phase 2 pair not on the surviving ISAKMP SA`);
  }
  for (const n of m.nodes.values()) {
    const expected = 2 * (m.nodes.size - 1);
    const have = await n.kernel.listSas();
    if (have.length !== expected) problems.push(`${n.name}: ${have.length} kernel SAs, expected ${expected}`);
    const live = new Set(
      [...m.nodes.values()]
        .filter((o) => o !== n)
        .flatMap((o) => installedChildren(n, o.name).flatMap((c) => [c.spiIn, c.spiOut])),
    );
    for (const s of have) if (!live.has(s.spi)) problems.push(`${n.name}: kernel SA ${s.spi.toString(16)} of no pair`);
  }
  return problems;
}

/** Delivers every queued datagram in a random order (the seed decides), new ones included. */
async function shuffleSettle(m: V1Mesh, rnd: () => number): Promise<void> {
  await flushMicrotasks(8);
  for (let i = 0; i < 10_000 && m.queue.length; i++) await m.step(Math.floor(rnd() * m.queue.length));
  await flushMicrotasks(8);
}

/** Both ends hold one phase 2 pair (crosswise SPIs) in the installed state. */
function commonPair(a: V1Node, b: V1Node): boolean {
  const cb = installedChildren(b, a.name);
  return installedChildren(a, b.name).some((x) => cb.some((y) => x.spiIn === y.spiOut && x.spiOut === y.spiIn));
}

const INFORMATIONAL = 5;
/** Drops every Informational datagram (DELETEs: DPD is off) while `on()` says so. */
function dropInformationals(m: V1Mesh, on: () => boolean): void {
  m.filter = (w) => !(on() && w.data.length > 28 && w.data[18] === INFORMATIONAL);
}

function duplicatesDeleted(m: V1Mesh): number {
  return [...m.nodes.values()].flatMap((n) => n.events).filter((e) => e.type === 'duplicate.deleted').length;
}

describe('IKEv1 crossing streams', () => {
  it('two peers initiating at the same moment converge on one ISAKMP SA and one phase 2 pair, 20 seeds', async () => {
    let crossed = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ dpdDelayMs: 0 });
      const rnd = mulberry32(seed * 7919);
      await Promise.all([a.manager.initiate('b'), b.manager.initiate('a')]);
      await shuffleSettle(m, rnd);
      // Both ISAKMP SAs came up: crossing streams really happened.
      expect(a.manager.established('b').length + b.manager.established('a').length, `seed ${seed}`).toBe(4);
      if (installedChildren(a, 'b').length > 1) crossed++;
      // Make-before-break: at every moment both ends hold a common pair.
      for (let t = 0; t < 40_000; t += 250) {
        await m.advance(250, 250);
        expect(commonPair(a, b), `seed ${seed} at ${t} ms`).toBe(true);
      }
      expect(await converged(m), `seed ${seed}`).toEqual([]);
      expect(duplicatesDeleted(m), `seed ${seed}`).toBeGreaterThanOrEqual(1);
      // Nothing was torn down and re-made: no peer went down, no handshake failed.
      for (const n of [a, b]) {
        expect(
          n.events.filter((e) => e.type === 'peer.down'),
          `seed ${seed}`,
        ).toEqual([]);
        expect(
          n.events.filter((e) => e.type === 'handshake.failed'),
          `seed ${seed}`,
        ).toEqual([]);
      }
      // Still converged much later (no fallback deleting the survivor).
      await m.advance(120_000, 1000);
      expect(await converged(m), `seed ${seed} later`).toEqual([]);
    }
    // Most seeds had two phase 2 pairs at once, so the child rule was exercised.
    expect(crossed).toBeGreaterThan(0);
  }, 120_000);

  it('DELETEs of the duplicates lost: the other end deletes them itself after the long grace, 20 seeds', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ dpdDelayMs: 0 });
      let lossy = true;
      dropInformationals(m, () => lossy);
      await Promise.all([a.manager.initiate('b'), b.manager.initiate('a')]);
      await shuffleSettle(m, mulberry32(seed * 31));
      for (let t = 0; t < 40_000; t += 500) {
        await m.advance(500, 250);
        expect(commonPair(a, b), `seed ${seed} at ${t} ms`).toBe(true);
      }
      lossy = false;
      expect(await converged(m), `seed ${seed}`).toEqual([]);
      const reasons = [...a.events, ...b.events].map((e) => (e as { reason?: string }).reason ?? '');
      expect(
        reasons.some((r) => r.includes('not deleted by peer')),
        `seed ${seed}`,
      ).toBe(true);
    }
  }, 120_000);

  it('both ends rekey the same phase 2 pair at once: the old pair goes, one new pair stays', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ dpdDelayMs: 0 });
      await a.manager.initiate('b');
      await m.settle();
      const [sa] = a.manager.established('b');
      const [sb] = b.manager.established('a');
      const [oa] = installedChildren(a, 'b');
      const [ob] = installedChildren(b, 'a');
      // Both soft lifetimes fire before either Quick Mode arrives.
      void sa!.queue.run(() => sa!.rekeyChild!(oa!));
      void sb!.queue.run(() => sb!.rekeyChild!(ob!));
      await flushMicrotasks(8);
      await shuffleSettle(m, mulberry32(seed));
      expect(commonPair(a, b), `seed ${seed}`).toBe(true);
      await m.advance(30_000, 250);
      expect(await converged(m), `seed ${seed}`).toEqual([]);
      const [na] = installedChildren(a, 'b');
      expect(na!.spiIn, `seed ${seed}`).not.toBe(oa!.spiIn);
      expect(na!.reqid).toBe(oa!.reqid);
      expect(oa!.state).toBe('destroyed');
      expect(ob!.state).toBe('destroyed');
    }
  }, 60_000);

  it('a rekey whose DELETE for the old pair was lost: the responder drops the old pair, not the new', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ dpdDelayMs: 0, ikeLifetimeMs: 24 * 3600_000 });
      await a.manager.initiate('b');
      await m.settle();
      const [old] = installedChildren(a, 'b');
      let lossy = false;
      dropInformationals(m, () => lossy);
      await m.advance(3_000_000, 60_000);
      lossy = true;
      // The initiator's soft lifetime (3600 s - 300 s margin, 10 % jitter) falls in here.
      for (let t = 0; t < 400_000 && installedChildren(a, 'b')[0] === old; t += 1000) await m.advance(1000, 1000);
      expect(installedChildren(a, 'b')[0], `seed ${seed}`).not.toBe(old);
      lossy = false;
      expect(installedChildren(b, 'a'), `seed ${seed}`).toHaveLength(2);
      for (let t = 0; t < 30_000; t += 1000) {
        await m.advance(1000, 1000);
        expect(commonPair(a, b), `seed ${seed} at ${t} ms`).toBe(true);
      }
      expect(await converged(m), `seed ${seed}`).toEqual([]);
    }
  }, 60_000);

  it("one end's Quick Mode completes just before the other's QM1 reaches it: a crossing, not the peer's rekey; the losing pair goes after the crossing grace, not the long fallback", async () => {
    const QUICK_MODE = 32;
    const isQm = (w: Wire) => w.data.length > 28 && w.data[18] === QUICK_MODE;
    let ourPairLost = 0;
    for (let seed = 1; seed <= 16; seed++) {
      const m = new V1Mesh(seed);
      const a = m.add('a', '10.0.0.1');
      const b = m.add('b', '10.0.0.2');
      m.pair({ dpdDelayMs: 0 });
      await Promise.all([a.manager.initiate('b'), b.manager.initiate('a')]);
      // Both Main Modes complete; each end then sends QM1 over its own ISAKMP SA.
      for (let i = 0; i < 1000; i++) {
        const next = m.queue.findIndex((w) => !isQm(w));
        if (next < 0) break;
        await m.step(next);
      }
      const qmFrom = (n: V1Node) => m.queue.flatMap((w, i) => (isQm(w) && w.from.addr === n.addr ? [i] : []));
      expect(qmFrom(a), `seed ${seed}`).toHaveLength(1);
      expect(qmFrom(b), `seed ${seed}`).toHaveLength(1);
      // b's QM1 reaches a, a's QM2 reaches b: b installs its pair and sends QM3 ...
      await m.step(qmFrom(b)[0]);
      await m.step(qmFrom(a).at(-1));
      const [ours] = installedChildren(b, 'a');
      expect(ours?.initiator, `seed ${seed}`).toBe(true);
      // ... and only then, a few ms later, a's QM1 (sent before a saw that QM3) reaches b.
      await m.clock.advance(5);
      await m.step(qmFrom(a)[0]);
      await m.settle();
      expect(installedChildren(a, 'b'), `seed ${seed}`).toHaveLength(2);
      expect(installedChildren(b, 'a'), `seed ${seed}`).toHaveLength(2);
      const [theirs] = installedChildren(b, 'a').filter((c) => c !== ours);
      if (pairRank(ours!) < pairRank(theirs!)) ourPairLost++;
      // The crossing rule's grace is 1.5-2.5 s; the long fallback (both ends waiting for the
      // other to delete) would be 10 graces, 20 s.
      for (let t = 0; t < 6000; t += 250) await m.advance(250, 250);
      expect(await converged(m), `seed ${seed}`).toEqual([]);
    }
    // The case that failed: the pair b negotiated loses the rank rule.
    expect(ourPairLost).toBeGreaterThan(0);
  }, 60_000);

  it('full mesh of 20 IKEv1 nodes started at once converges with no duplicates, 5 runs', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const m = new V1Mesh(seed);
      for (let i = 1; i <= 20; i++) m.add(`n${i}`, `10.0.0.${i}`);
      m.pair();
      // No cap below the 19 peers each (start-up pacing would hold some back).
      for (const n of m.nodes.values()) await n.manager.start({ maxConcurrent: 19, jitterMs: 200 });
      // Every start timer fires before any datagram arrives: every pair of nodes crosses.
      await m.clock.advance(250, () => flushMicrotasks(8));
      expect(m.queue.length, `seed ${seed}`).toBe(20 * 19);
      await shuffleSettle(m, mulberry32(seed));
      await m.advance(45_000, 1000);
      expect(await converged(m), `seed ${seed}`).toEqual([]);
      expect(duplicatesDeleted(m), `seed ${seed}`).toBeGreaterThan(0);
    }
  }, 240_000);
});
