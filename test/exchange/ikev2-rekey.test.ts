import { describe, expect, it } from 'vitest';
import type { IkeSa } from '../../src/ikev2/ike-sa.js';
import { Mesh, peerPolicy } from '../helpers/ike-pair.js';

function two(over = {}, child = {}) {
  const m = new Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  a.manager.setPeer(peerPolicy(a, b, over, child));
  b.manager.setPeer(peerPolicy(b, a, over, child));
  return { m, a, b };
}

const childOf = (sa: IkeSa | undefined) => [...(sa?.children.values() ?? [])];

async function up(m: Mesh, a: ReturnType<typeof two>['a']) {
  await a.manager.initiate('b');
  await m.settle();
}

describe('IKEv2 rekeying', () => {
  it('rekeys a Child SA make-before-break when its lifetime runs down', async () => {
    const { m, a, b } = two({}, { lifetimeMs: 60_000, rekeyMarginMs: 20_000 });
    await up(m, a);
    const before = childOf(a.manager.established('b')[0])[0]!;
    // Watch kernel SA counts at every step: never fewer than one pair.
    let min = Number.POSITIVE_INFINITY;
    for (let t = 0; t < 60; t++) {
      await m.advance(1000);
      min = Math.min(min, (await a.kernel.listSas()).filter((s) => s.src === '10.0.0.1').length);
    }
    const after = childOf(a.manager.established('b')[0]);
    expect(after).toHaveLength(1);
    expect(after[0]!.spiIn).not.toBe(before.spiIn);
    expect(before.state).toBe('destroyed');
    expect(min).toBeGreaterThanOrEqual(1);
    const cb = childOf(b.manager.established('a')[0]);
    expect(cb).toHaveLength(1);
    expect(cb[0]!.spiOut).toBe(after[0]!.spiIn);
    expect(await a.kernel.listSas()).toHaveLength(2);
    expect(await b.kernel.listSas()).toHaveLength(2);
    expect(
      a.events.filter((e) => e.type === 'rekey.completed' && e.kind === 'child').length +
        b.events.filter((e) => e.type === 'rekey.completed' && e.kind === 'child').length,
    ).toBeGreaterThanOrEqual(1);
  });

  it('rekeys the IKE SA and moves the Child SAs without touching the kernel', async () => {
    const { m, a, b } = two({ ikeLifetimeMs: 120_000, rekeyMarginMs: 30_000 });
    await up(m, a);
    const old = a.manager.established('b')[0]!;
    const child = childOf(old)[0]!;
    await m.advance(100_000, 1000);
    const [fresh] = a.manager.established('b');
    expect(fresh).toBeDefined();
    expect(fresh).not.toBe(old);
    expect(old.state).toBe('destroyed');
    expect(a.manager.allSas()).toHaveLength(1);
    expect(b.manager.allSas()).toHaveLength(1);
    const [fb] = b.manager.established('a');
    expect(fb!.spiI.equals(fresh!.spiI) && fb!.spiR.equals(fresh!.spiR)).toBe(true);
    expect(childOf(fresh)[0]?.spiIn).toBe(child.spiIn);
    expect(await a.kernel.listSas()).toHaveLength(2);
    // The new IKE SA works: a liveness check gets an authenticated answer.
    const alive = fresh!.probe();
    await m.settle();
    expect(await alive).toBe('alive');
  });

  it('resolves a simultaneous Child SA rekey to one pair (RFC 7296 2.8.1)', async () => {
    const { m, a, b } = two();
    await up(m, a);
    const sa = a.manager.established('b')[0]!;
    const sb = b.manager.established('a')[0]!;
    await Promise.all([
      sa.queue.run(() => sa.rekeyChild(childOf(sa)[0]!)),
      sb.queue.run(() => sb.rekeyChild(childOf(sb)[0]!)),
    ]);
    await m.settle();
    await m.advance(5000);
    const ca = childOf(sa).filter((c) => c.state === 'installed');
    const cb = childOf(sb).filter((c) => c.state === 'installed');
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    expect(ca[0]!.spiOut).toBe(cb[0]!.spiIn);
    expect(await a.kernel.listSas()).toHaveLength(2);
    expect(await b.kernel.listSas()).toHaveLength(2);
  });

  it('resolves a simultaneous IKE SA rekey to one IKE SA (RFC 7296 2.8.2)', async () => {
    const { m, a, b } = two();
    await up(m, a);
    const sa = a.manager.established('b')[0]!;
    const sb = b.manager.established('a')[0]!;
    await Promise.all([sa.queue.run(() => sa.rekeyIke()), sb.queue.run(() => sb.rekeyIke())]);
    await m.settle();
    await m.advance(5000);
    const ea = a.manager.established('b');
    const eb = b.manager.established('a');
    expect(ea).toHaveLength(1);
    expect(eb).toHaveLength(1);
    expect(ea[0]!.spiI.equals(eb[0]!.spiI)).toBe(true);
    expect(ea[0]!.children.size).toBe(1);
    expect(eb[0]!.children.size).toBe(1);
    expect(await a.kernel.listSas()).toHaveLength(2);
    const alive = ea[0]!.probe();
    await m.settle();
    expect(await alive).toBe('alive');
  });

  it('rekeys a Child SA with PFS (a new KE in CREATE_CHILD_SA)', async () => {
    const { ESP_CBC } = await import('../helpers/ike-pair.js');
    const { m, a, b } = two({}, { espProposals: [ESP_CBC] });
    await up(m, a);
    const sa = a.manager.established('b')[0]!;
    const old = childOf(sa)[0]!;
    await sa.queue.run(() => sa.rekeyChild(old));
    await m.settle();
    const [now] = childOf(sa);
    expect(now?.suite.ke).toBe(14);
    expect(now?.spiIn).not.toBe(old.spiIn);
    expect(childOf(b.manager.established('a')[0])[0]?.keysIn.encKey.equals(now!.keysOut.encKey)).toBe(true);
  });
});

describe('IKEv2 rekeying: Child SA timers follow an IKE SA rekey', () => {
  it('a child moved by an IKE rekey is still rekeyed on time by the new IKE SA', async () => {
    const { m, a, b } = two(
      { ikeLifetimeMs: 120_000, rekeyMarginMs: 30_000 },
      { lifetimeMs: 300_000, rekeyMarginMs: 60_000 },
    );
    await up(m, a);
    const oldIke = a.manager.established('b')[0]!;
    const firstChild = childOf(oldIke)[0]!;
    await m.advance(100_000, 1000); // IKE rekey happened (at ~90 s), child still the same
    const newIke = a.manager.established('b')[0]!;
    expect(newIke).not.toBe(oldIke);
    expect(childOf(newIke)[0]?.spiIn).toBe(firstChild.spiIn);
    await m.advance(170_000, 1000); // past the child's rekey time (~240 s), before its expiry (300 s)
    const ike = a.manager.established('b')[0]!;
    const now = childOf(ike).filter((c) => c.state === 'installed');
    expect(now).toHaveLength(1);
    expect(now[0]!.spiIn).not.toBe(firstChild.spiIn);
    expect(childOf(b.manager.established('a')[0]).filter((c) => c.state === 'installed')[0]?.spiOut).toBe(
      now[0]!.spiIn,
    );
  });
});

describe('IKEv2 Child SA key directions (RFC 7296 2.17)', () => {
  it('follow the CREATE_CHILD_SA roles, also when the IKE SA responder starts the exchange', async () => {
    const { deriveChildKeys } = await import('../../src/crypto/ikev2/keys.js');
    const { encrKeyMaterialSize } = await import('../../src/crypto/transforms.js');
    const { decodeMessage, isNonce } = await import('../../src/wire/ikev2/index.js');
    const { m, a, b } = two();
    await up(m, a);
    const sa = a.manager.established('b')[0]!; // a: IKE initiator
    const sb = b.manager.established('a')[0]!; // b: IKE responder, starts the CREATE_CHILD_SA
    const before = m.sent.length;
    const existing = new Set(sb.children.keys());
    await sb.queue.run(() => sb.createChild('host'));
    await m.settle();
    const ccsa = m.sent.slice(before).filter((w) => w.data[18] === 36);
    expect(ccsa).toHaveLength(2);
    const nonces = ccsa.map((w) => {
      const msg = decodeMessage(w.data);
      const opened = sb.protector!.open(w.data, msg.header, msg.payloads);
      // b's protector opens a's response; a's protector opens b's request.
      const o = opened.kind === 'payloads' ? opened : sa.protector!.open(w.data, msg.header, msg.payloads);
      if (o.kind !== 'payloads') throw new Error('cannot decrypt');
      return o.payloads.find(isNonce)!.data;
    });
    const fresh = [...sb.children.values()].find((c) => !existing.has(c.uid))!;
    const km = deriveChildKeys({
      prf: sb.suite!.prf,
      skD: sb.keys!.skD,
      ni: nonces[0]!, // the CREATE_CHILD_SA initiator's (b's) nonce
      nr: nonces[1]!,
      encrKeyLen: encrKeyMaterialSize(fresh.suite.encr.id, fresh.suite.encr.keyLen),
      integKeyLen: 0,
    });
    expect(fresh.keysOut.encKey.equals(km.initiatorToResponder.encKey)).toBe(true);
    expect(fresh.keysIn.encKey.equals(km.responderToInitiator.encKey)).toBe(true);
  });
});

describe('IKEv2 rekeying: a Child SA rekey requested during an IKE SA rekey', () => {
  it('runs on the IKE SA that owns the child afterwards (no TEMPORARY_FAILURE, no lost child)', async () => {
    const { m, a, b } = two();
    await up(m, a);
    const sa = a.manager.established('b')[0]!;
    const child = childOf(sa)[0]!;
    await sa.queue.run(() => sa.rekeyIke());
    await sa.queue.run(() => sa.rekeyChild(child)); // queued behind the IKE rekey on the old SA
    await m.settle();
    await m.advance(3000);
    const [fresh] = a.manager.established('b');
    expect(fresh).not.toBe(sa);
    const installed = childOf(fresh).filter((c) => c.state === 'installed');
    expect(installed).toHaveLength(1);
    expect(installed[0]!.spiIn).not.toBe(child.spiIn);
    const peer = childOf(b.manager.established('a')[0]).filter((c) => c.state === 'installed');
    expect(peer).toHaveLength(1);
    expect(peer[0]!.spiOut).toBe(installed[0]!.spiIn);
    expect(await a.kernel.listSas()).toHaveLength(2);
  });
});
