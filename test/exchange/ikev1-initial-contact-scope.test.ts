/**
 * INITIAL-CONTACT is about one relationship: the pair of identities that
 * negotiated the ISAKMP SA. A host that talks to one remote identity under
 * several local identities (bench/handshake-v1: K relationships i<i>.bench <->
 * r.bench between the same two addresses) gets INITIAL-CONTACT from the remote
 * side once per relationship (its first contact with each i<i>); that must not
 * purge the SAs of the other relationships, which merely share the remote
 * identity (found in the bench: both peers counted K installed pairs, but the
 * initiator's kernel kept as few as 2 of 50, the rest retired as "replaced").
 */
import { describe, expect, it } from 'vitest';
import { parseIdentity } from '../../src/sa/identity.js';
import { parseTrafficSelector } from '../../src/sa/traffic-selector.js';
import { installedChildren, V1Mesh, type V1Node, v1Policy } from '../helpers/ike1-pair.js';

const K = 6;

/** K relationships a<i>.mesh <-> b.mesh between a's and b's one address, each with its own tunnel. */
function relationships(a: V1Node, b: V1Node): void {
  for (let i = 0; i < K; i++) {
    const aId = parseIdentity(`fqdn:a${i}.mesh`);
    const bId = parseIdentity('fqdn:b.mesh');
    const aNet = parseTrafficSelector(`10.1.${i}.0/24`);
    const bNet = parseTrafficSelector(`10.2.${i}.0/24`);
    a.manager.setPeer(
      v1Policy(
        a,
        { name: `b${i}`, addr: b.addr },
        { localId: aId, remoteId: bId, start: 'none', dpdDelayMs: 0 },
        { name: 'net', mode: 'tunnel', localTs: [aNet], remoteTs: [bNet] },
      ),
    );
    b.manager.setPeer(
      v1Policy(
        b,
        { name: `a${i}`, addr: a.addr },
        { localId: bId, remoteId: aId, start: 'none', dpdDelayMs: 0 },
        { name: 'net', mode: 'tunnel', localTs: [bNet], remoteTs: [aNet] },
      ),
    );
  }
}

/** Every relationship's pair is known to IKE on both sides and present in both kernels. */
async function expectAllPairs(a: V1Node, b: V1Node): Promise<void> {
  const aSas = await a.kernel.listSas();
  const bSas = await b.kernel.listSas();
  for (let i = 0; i < K; i++) {
    const ai = installedChildren(a, `b${i}`);
    const bi = installedChildren(b, `a${i}`);
    expect(ai, `a's installed pairs with b${i}`).toHaveLength(1);
    expect(bi, `b's installed pairs with a${i}`).toHaveLength(1);
    const spis = [ai[0]!.spiIn, ai[0]!.spiOut];
    expect(bi[0]!.spiIn).toBe(spis[1]);
    expect(bi[0]!.spiOut).toBe(spis[0]);
    for (const spi of spis) {
      expect(
        aSas.filter((s) => s.spi === spi),
        `a's kernel SA ${spi.toString(16)} (relationship ${i})`,
      ).toHaveLength(1);
      expect(
        bSas.filter((s) => s.spi === spi),
        `b's kernel SA ${spi.toString(16)} (relationship ${i})`,
      ).toHaveLength(1);
    }
  }
  expect(aSas).toHaveLength(2 * K);
  expect(bSas).toHaveLength(2 * K);
  expect(a.events.filter((e) => e.type === 'initial_contact.purge')).toEqual([]);
  expect(b.events.filter((e) => e.type === 'initial_contact.purge')).toEqual([]);
}

describe('IKEv1 INITIAL-CONTACT is scoped to the pair of identities', () => {
  it('K relationships with one remote identity, started one after another: every pair stays in both kernels', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    relationships(a, b);
    for (let i = 0; i < K; i++) {
      await a.manager.initiate(`b${i}`);
      await m.settle();
      expect(installedChildren(a, `b${i}`), `relationship ${i} established`).toHaveLength(1);
      await m.advance(1000);
    }
    // Past the grace period of pairs kept after a purge: nothing may go then either.
    await m.advance(30_000);
    await expectAllPairs(a, b);
    expect(a.events.filter((e) => e.type === 'handshake.completed')).toHaveLength(K);
  });

  it('a start-up herd whose later half begins after the first half is up: every pair stays in both kernels', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    relationships(a, b);
    const half = K / 2;
    await Promise.all(Array.from({ length: half }, (_, i) => a.manager.initiate(`b${i}`)));
    await m.settle();
    await m.advance(500);
    await Promise.all(Array.from({ length: K - half }, (_, i) => a.manager.initiate(`b${half + i}`)));
    await m.settle();
    await m.advance(30_000);
    await expectAllPairs(a, b);
  });

  it('the same pair of identities still purges: a restarted b re-establishes one relationship, the others stay', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    relationships(a, b);
    for (let i = 0; i < K; i++) await a.manager.initiate(`b${i}`);
    await m.settle();
    const before = a.manager.established('b0')[0]!;
    const others = Array.from({ length: K - 1 }, (_, i) => a.manager.established(`b${i + 1}`)[0]!);
    await m.advance(1000);
    // b lost its state; its relationship with a0 comes back first (its first contact: INITIAL-CONTACT).
    const b2 = await m.reboot('b');
    await b2.manager.initiate('a0');
    await m.settle();
    const purges = a.events.filter((e) => e.type === 'initial_contact.purge');
    expect(purges).toHaveLength(1);
    expect(purges[0]).toMatchObject({ peer: 'b0', sa: before.label });
    expect(before.state).toBe('destroyed');
    for (const o of others) expect(o.state).toBe('established');
    expect(installedChildren(a, 'b0')).toHaveLength(1);
    expect(installedChildren(b2, 'a0')).toHaveLength(1);
    for (let i = 1; i < K; i++) expect(installedChildren(a, `b${i}`)).toHaveLength(1);
  });
});
