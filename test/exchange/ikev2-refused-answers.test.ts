/**
 * Answers the peer acted upon and we refuse, and pairs the peer no longer has. Found by the
 * engine fuzz (test/fuzz/ikev2-engine.test.ts): before these fixes each left the two ends
 * disagreeing about their Child or IKE SAs until a hard expiry.
 */
import { describe, expect, it } from 'vitest';
import type { IkeSa } from '../../src/ikev2/ike-sa.js';
import { N } from '../../src/ikev2/payloads.js';
import { EXCHANGE, isKe, isNotify } from '../../src/wire/ikev2/index.js';
import { Mesh, type Node, peerPolicy } from '../helpers/ike-pair.js';
import { rewriteSent } from '../helpers/ikev2-tamper.js';

function two() {
  const m = new Mesh(11);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  a.manager.setPeer(peerPolicy(a, b, { start: 'none' }));
  b.manager.setPeer(peerPolicy(b, a, { start: 'none' }));
  return { m, a, b };
}

const childrenOf = (sa: IkeSa | undefined) => [...(sa?.children.values() ?? [])];
const isResponse = (d: Buffer) => ((d[19] ?? 0) & 0x20) !== 0;

/** The single established IKE SA of each side, and whether both hold the same Child SA pair on it. */
function agreement(a: Node, b: Node) {
  const [sa] = a.manager.established('b');
  const [sb] = b.manager.established('a');
  const ca = childrenOf(sa).filter((c) => c.state === 'installed');
  const cb = childrenOf(sb).filter((c) => c.state === 'installed');
  return {
    ikeA: a.manager.established('b').length,
    ikeB: b.manager.established('a').length,
    sameIke: !!sa && !!sb && sa.spiI.equals(sb.spiI) && sa.spiR.equals(sb.spiR),
    childPairs: ca.length === 1 && cb.length === 1 && ca[0]!.spiIn === cb[0]!.spiOut && ca[0]!.spiOut === cb[0]!.spiIn,
  };
}

describe('IKEv2: answers we refuse, pairs the peer lost', () => {
  it('a Child SA rekey answer we refuse: our Delete removes the peer’s new pair, its old pair is current again, the next rekey succeeds', async () => {
    const { m, a, b } = two();
    await a.manager.initiate('b');
    await m.settle();
    const sa = a.manager.established('b')[0]!;
    const old = childrenOf(sa)[0]!;
    let rewritten = 0;
    m.filter = (w) => {
      if (w.data[18] !== EXCHANGE.CREATE_CHILD_SA || !isResponse(w.data) || w.from.addr !== b.addr || rewritten)
        return true;
      // The peer made the new pair, but its answer is for tunnel mode (no USE_TRANSPORT_MODE):
      // we asked for transport mode and cannot take it.
      const data = rewriteSent(b, w, (ps) => ps.filter((p) => !(isNotify(p) && p.notifyType === N.USE_TRANSPORT_MODE)));
      if (!data) return true;
      rewritten++;
      m.queue.push({ ...w, data });
      return false;
    };
    await sa.queue.run(() => sa.rekeyChild(old));
    await m.settle();
    expect(rewritten).toBe(1);
    expect(a.events.some((e) => e.type === 'child.state' && String(e.reason).includes('peer wants tunnel mode'))).toBe(
      true,
    );
    // b dropped the pair it made for the refused answer and went back to the old one.
    const sb = b.manager.established('a')[0]!;
    expect(childrenOf(sb).map((c) => [c.spiIn, c.spiOut, c.state])).toEqual([[old.spiOut, old.spiIn, 'installed']]);
    expect(b.events.some((e) => e.type === 'child.state' && e.from === 'rekeyed' && e.to === 'installed')).toBe(true);
    expect(a.events.filter((e) => e.type === 'rekey.failed').map((e) => [e.kind, e.code])).toEqual([
      ['child', 'NO_PROPOSAL_CHOSEN'],
    ]);
    expect((await b.kernel.listSas()).map((s) => s.spi).sort()).toEqual([old.spiIn, old.spiOut].sort());
    // a's retry (within 30 s) is a normal rekey now, not CHILD_SA_NOT_FOUND.
    await m.advance(40_000);
    expect(agreement(a, b)).toEqual({ ikeA: 1, ikeB: 1, sameIke: true, childPairs: true });
    const now = childrenOf(a.manager.established('b')[0])[0]!;
    expect(now.spiIn).not.toBe(old.spiIn);
    expect(a.events.some((e) => e.type === 'rekey.completed' && e.kind === 'child')).toBe(true);
    expect(a.events.some((e) => String(e.reason ?? '').includes('CHILD_SA_NOT_FOUND'))).toBe(false);
    expect(await a.kernel.listSas()).toHaveLength(2);
    expect(await b.kernel.listSas()).toHaveLength(2);
  });

  it('CHILD_SA_NOT_FOUND to our rekey: a new Child SA from scratch, then the old one goes (RFC 7296 2.25)', async () => {
    const { m, a, b } = two();
    await a.manager.initiate('b');
    await m.settle();
    const sa = a.manager.established('b')[0]!;
    const old = childrenOf(sa)[0]!;
    // b loses its pair without telling a (as after a failed install or an operator's flush).
    const sb = b.manager.established('a')[0]!;
    await sb.queue.run(() => sb.removeChild(childrenOf(sb)[0]!, 'test: lost'));
    expect(await b.kernel.listSas()).toEqual([]);
    await sa.queue.run(() => sa.rekeyChild(old));
    await m.settle();
    await m.advance(2000);
    expect(a.events.some((e) => e.type === 'child.state' && String(e.reason).includes('CHILD_SA_NOT_FOUND'))).toBe(
      true,
    );
    expect(a.events.filter((e) => e.type === 'rekey.failed').map((e) => [e.kind, e.code])).toEqual([
      ['child', 'CHILD_SA_NOT_FOUND'],
    ]);
    expect(old.state).toBe('destroyed');
    expect(agreement(a, b)).toEqual({ ikeA: 1, ikeB: 1, sameIke: true, childPairs: true });
    expect(await a.kernel.listSas()).toHaveLength(2);
    expect(await b.kernel.listSas()).toHaveLength(2);
    // No further rekey attempts of the lost pair.
    const attempts = a.events.filter((e) => e.type === 'rekey.started').length;
    await m.advance(60_000);
    expect(a.events.filter((e) => e.type === 'rekey.started').length).toBe(attempts);
  });

  it('an IKE SA rekey answer we refuse: a fresh IKE SA replaces the old one, make before break', async () => {
    const { m, a, b } = two();
    await a.manager.initiate('b');
    await m.settle();
    const sa = a.manager.established('b')[0]!;
    let rewritten = 0;
    m.filter = (w) => {
      if (w.data[18] !== EXCHANGE.CREATE_CHILD_SA || !isResponse(w.data) || w.from.addr !== b.addr || rewritten)
        return true;
      // The peer rekeyed (it moved to the new IKE SA), but its answer lacks the KE payload.
      const data = rewriteSent(b, w, (ps) => ps.filter((p) => !isKe(p)));
      if (!data) return true;
      rewritten++;
      m.queue.push({ ...w, data });
      return false;
    };
    await sa.queue.run(() => sa.rekeyIke());
    await m.settle();
    expect(rewritten).toBe(1);
    expect(b.manager.allSas().some((s) => s.state === 'rekeyed')).toBe(true); // b took the rekey
    expect(a.events.filter((e) => e.type === 'rekey.failed').map((e) => [e.kind, e.code, e.reason])).toEqual([
      ['ike', 'REFUSED_ANSWER', 'malformed IKE rekey response'],
    ]);
    await m.advance(10_000);
    expect(agreement(a, b)).toEqual({ ikeA: 1, ikeB: 1, sameIke: true, childPairs: true });
    expect(sa.state).toBe('destroyed');
    expect(a.manager.allSas().every((s) => s.state === 'established')).toBe(true);
    expect(b.manager.allSas().every((s) => s.state === 'established')).toBe(true);
    expect(await a.kernel.listSas()).toHaveLength(2);
    expect(await b.kernel.listSas()).toHaveLength(2);
  });
  it('an IKE SA rekey answer we refuse, and no fresh IKE SA comes up: the old one stays and its rekey is retried only then', async () => {
    const { m, a, b } = two();
    await a.manager.initiate('b');
    await m.settle();
    const sa = a.manager.established('b')[0]!;
    let rewritten = 0;
    m.filter = (w) => {
      // The fresh IKE SA never forms: a's IKE_SA_INIT requests are lost from now on.
      if (rewritten && w.data[18] === EXCHANGE.IKE_SA_INIT && !isResponse(w.data)) return false;
      if (w.data[18] !== EXCHANGE.CREATE_CHILD_SA || !isResponse(w.data) || w.from.addr !== b.addr || rewritten)
        return true;
      const data = rewriteSent(b, w, (ps) => ps.filter((p) => !isKe(p)));
      if (!data) return true;
      rewritten++;
      m.queue.push({ ...w, data });
      return false;
    };
    await sa.queue.run(() => sa.rekeyIke());
    await m.settle();
    expect(rewritten).toBe(1);
    const ikeRekeys = () => a.events.filter((e) => e.type === 'rekey.started' && e.kind === 'ike').length;
    // While the replacement is being negotiated (up to 30 s), the refused SA is not rekeyed again.
    await m.advance(29_000);
    expect(ikeRekeys()).toBe(1);
    // The replacement gave up: the old SA is kept and its rekey retried.
    await m.advance(40_000);
    expect(sa.state === 'established' || sa.state === 'rekeying').toBe(true);
    expect(sa.retiring).toBe(false);
    expect(ikeRekeys()).toBeGreaterThanOrEqual(2);
  });
});
