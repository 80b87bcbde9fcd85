/**
 * The IKEv1 responder's per-config lookups (candidate peers, proposals, methods),
 * its half-open count per source address and its SAs-per-peer index are kept
 * incrementally (bench/handshake-v1: a start-up herd of K SAs from one address
 * scanned every peer and every SA per handshake). These check that the indexes
 * follow config changes and SA lifetimes exactly as the scans did.
 */
import { describe, expect, it } from 'vitest';
import { Ikev1Manager } from '../../src/ikev1/manager.js';
import { parseIdentity } from '../../src/sa/identity.js';
import { installedChildren, V1Mesh, type V1Node, v1Policy } from '../helpers/ike1-pair.js';

/** Gives `n` a fresh manager with these limits (same environment: clock, kernel, link). */
function withLimits(n: V1Node, limits: ConstructorParameters<typeof Ikev1Manager>[1]): void {
  n.manager = new Ikev1Manager(n.manager.env, limits);
}

describe('IKEv1 responder indexes', () => {
  it('half-open per-address limit: the third concurrent Main Mode is dropped, and accepted once the first two are up', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    withLimits(b, { halfOpenPerAddress: 2 });
    // Three relationships between the same two addresses, told apart by identity.
    for (let i = 0; i < 3; i++) {
      const ids = { localId: parseIdentity(`fqdn:a${i}.mesh`), remoteId: parseIdentity('fqdn:b.mesh') };
      a.manager.setPeer(v1Policy(a, { name: `b${i}`, addr: b.addr }, { ...ids, start: 'none' }));
      b.manager.setPeer(
        v1Policy(
          b,
          { name: `a${i}`, addr: a.addr },
          { localId: ids.remoteId, remoteId: ids.localId, start: 'none' },
          { localTs: [], remoteTs: [] },
        ),
      );
    }
    // Phase 2 selectors: host to host (the defaults of v1Policy), the same child for all three.
    for (let i = 0; i < 3; i++) {
      const p = b.manager.peer(`a${i}`)!.policy;
      b.manager.setPeer({ ...p, children: v1Policy(b, a).children });
    }
    await Promise.all([0, 1, 2].map((i) => a.manager.initiate(`b${i}`)));
    // The three MM1s are in flight; deliver them first.
    await m.step();
    await m.step();
    await m.step();
    const dropped = () =>
      b.events.filter((e) => e.type === 'packet.dropped' && e.reason === 'half-open limit for address').length;
    expect(dropped()).toBe(1);
    await m.settle();
    expect(a.manager.established('b0')).toHaveLength(1);
    expect(a.manager.established('b1')).toHaveLength(1);
    expect(a.manager.established('b2')).toHaveLength(0);
    // The initiator retransmits MM1; the two earlier SAs no longer count as half-open.
    await m.advance(5000);
    expect(dropped()).toBe(1);
    for (let i = 0; i < 3; i++) {
      expect(a.manager.established(`b${i}`)).toHaveLength(1);
      expect(b.manager.established(`a${i}`)).toHaveLength(1);
      expect(installedChildren(b, `a${i}`)).toHaveLength(1);
    }
  });

  it('a peer added after a handshake from the same address is a responder candidate (lookups follow config changes)', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ start: 'none' });
    await a.manager.initiate('b');
    await m.settle();
    expect(b.manager.established('a')).toHaveLength(1);
    // A second relationship between the same addresses with its own identities and key.
    const psk = { kind: 'psk' as const, secret: Buffer.from('second-relationship-psk-0123456789') };
    a.manager.setPeer(
      v1Policy(
        a,
        { name: 'b2', addr: b.addr },
        { localId: parseIdentity('fqdn:a2.mesh'), remoteId: parseIdentity('fqdn:b2.mesh'), auth: psk, start: 'none' },
      ),
    );
    b.manager.setPeer(
      v1Policy(
        b,
        { name: 'a2', addr: a.addr },
        { localId: parseIdentity('fqdn:b2.mesh'), remoteId: parseIdentity('fqdn:a2.mesh'), auth: psk, start: 'none' },
      ),
    );
    await a.manager.initiate('b2');
    await m.settle();
    expect(b.events.filter((e) => e.type === 'handshake.failed')).toEqual([]);
    expect(b.manager.established('a2')).toHaveLength(1);
    expect(b.manager.established('a2')[0]!.remoteId?.text).toBe('fqdn:a2.mesh');
    expect(b.manager.sasOf('a')).toHaveLength(1);
    // Removing the peer drops it from the candidates: its Main Mode no longer authenticates.
    await b.manager.removePeer('a2');
    await m.settle();
    expect(b.manager.sasOf('a2')).toEqual([]);
    await a.manager.terminate('b2');
    await m.settle();
    await a.manager.initiate('b2');
    await m.settle();
    expect(b.manager.sasOf('a2')).toEqual([]);
    expect(b.events.some((e) => e.type === 'handshake.failed' && e.reason === 'AUTHENTICATION_FAILED')).toBe(true);
  });

  it('sasOf follows a responder SA from MM5 (peer learnt) to its deletion', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ start: 'none', dpdAction: 'clear' });
    await a.manager.initiate('b');
    // MM1..MM4: the responder does not know the peer yet.
    for (let i = 0; i < 4; i++) await m.step();
    expect(b.manager.sasOf('a')).toEqual([]);
    expect(b.manager.allSas()).toHaveLength(1);
    await m.settle();
    const [sa] = b.manager.sasOf('a');
    expect(sa?.isUp).toBe(true);
    expect(b.manager.allSas()).toEqual([sa]);
    await a.manager.terminate('b');
    await m.settle();
    expect(b.manager.sasOf('a')).toEqual([]);
    expect(a.manager.sasOf('b')).toEqual([]);
  });
});

describe('IKEv1 Main Mode 5 and INITIAL-CONTACT by identity', () => {
  it('MM5 looks up the presented identity among the peers sharing the key: 100 other peers with the same PSK and address are not examined', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    let reads = 0;
    const counted = <T extends object>(p: T): T =>
      new Proxy(p, {
        get(t, k, r) {
          if (k === 'remoteId') reads++;
          return Reflect.get(t, k, r);
        },
      });
    // Other relationships with b's address and the same key, told apart by identity; b's own comes last.
    for (let i = 0; i < 100; i++)
      a.manager.setPeer(
        counted(
          v1Policy(
            a,
            { name: `decoy${i}`, addr: b.addr },
            { remoteId: parseIdentity(`fqdn:decoy${i}.mesh`), start: 'none' },
          ),
        ),
      );
    a.manager.setPeer(v1Policy(a, b, { start: 'none' }));
    b.manager.setPeer(v1Policy(b, a));
    await b.manager.initiate('a');
    await m.settle();
    expect(installedChildren(a, 'b')).toHaveLength(1);
    // The index is built (once per configuration); a restarted b negotiates again with INITIAL-CONTACT.
    await m.advance(1000);
    reads = 0;
    const b2 = await m.reboot('b');
    await b2.manager.initiate('a');
    await m.settle();
    expect(a.events.filter((e) => e.type === 'initial_contact.purge')).toHaveLength(1);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(installedChildren(a, 'b')).toHaveLength(1);
    expect(reads, "reads of other peers' identities during the second handshake").toBe(0);
  });

  it('INITIAL-CONTACT purges only the SAs with the same identity (by index)', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    const c = m.add('c', '10.0.0.3');
    m.pair({ start: 'none', dpdDelayMs: 0 });
    await b.manager.initiate('a');
    await c.manager.initiate('a');
    await m.settle();
    const bSa = a.manager.established('b')[0]!;
    const cSa = a.manager.established('c')[0]!;
    await m.advance(1000);
    const b2 = await m.reboot('b');
    await b2.manager.initiate('a');
    await m.settle();
    expect(bSa.state).toBe('destroyed');
    expect(cSa.state).toBe('established');
    expect(a.manager.established('b')).toHaveLength(1);
    expect(a.manager.established('c')).toEqual([cSa]);
  });
});
