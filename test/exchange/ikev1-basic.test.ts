import { describe, expect, it } from 'vitest';
import { installedChildren, P1_AES128_SHA256, V1Mesh, type V1Node } from '../helpers/ike1-pair.js';

function setup() {
  const m = new V1Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  return { m, a, b };
}

async function crosswise(a: V1Node, b: V1Node) {
  const ca = installedChildren(a, 'b');
  const cb = installedChildren(b, 'a');
  expect(ca).toHaveLength(1);
  expect(cb).toHaveLength(1);
  expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
  expect(ca[0]!.spiOut).toBe(cb[0]!.spiIn);
  expect(ca[0]!.keysOut.encKey.equals(cb[0]!.keysIn.encKey)).toBe(true);
  expect(ca[0]!.keysIn.integKey.equals(cb[0]!.keysOut.integKey)).toBe(true);
  const ka = await a.kernel.listSas();
  const kb = await b.kernel.listSas();
  expect(ka).toHaveLength(2);
  expect(ka.map((s) => s.spi).sort()).toEqual(kb.map((s) => s.spi).sort());
  const inA = ka.find((s) => s.dst === a.addr)!;
  const outB = kb.find((s) => s.src === b.addr)!;
  expect(inA.spi).toBe(outB.spi);
  expect(inA.algorithms).toEqual(outB.algorithms);
  return { ca: ca[0]!, cb: cb[0]! };
}

describe('IKEv1 Main Mode + Quick Mode', () => {
  it('PSK aes128-sha256-modp2048, transport, no PFS', async () => {
    const { m, a, b } = setup();
    m.pair();
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.established('b')).toHaveLength(1);
    expect(b.manager.established('a')).toHaveLength(1);
    // 6 Main Mode + 3 Quick Mode datagrams.
    expect(m.sent).toHaveLength(9);
    const { ca } = await crosswise(a, b);
    expect(ca.mode).toBe('transport');
    expect(a.keylog.some((k) => k.table === 'ikev1_decryption_table')).toBe(true);
    expect(a.keylog.filter((k) => k.table === 'esp_sa')).toHaveLength(2);
    expect(b.events.some((e) => e.type === 'handshake.completed')).toBe(true);
  });
});

describe('IKEv1 suites, modes and failures', () => {
  it('PSK aes256-sha1-modp2048, tunnel with subnet IDs and PFS', async () => {
    const { m, a, b } = setup();
    const { P1_AES256_SHA1, ESP_AES128_SHA256_PFS } = await import('../helpers/ike1-pair.js');
    const { parseTrafficSelector } = await import('../../src/sa/traffic-selector.js');
    const nets = { a: '192.168.1.0/24', b: '192.168.2.0/24' };
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const { v1Policy } = await import('../helpers/ike1-pair.js');
      x.manager.setPeer(
        v1Policy(
          x,
          y,
          { ikeProposals: [P1_AES256_SHA1] },
          {
            mode: 'tunnel',
            localTs: [parseTrafficSelector(nets[x.name as 'a' | 'b'])],
            remoteTs: [parseTrafficSelector(nets[y.name as 'a' | 'b'])],
            espProposals: [ESP_AES128_SHA256_PFS],
          },
        ),
      );
    }
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    expect(sa?.suite).toMatchObject({ keyLen: 256, hash: 'sha1', group: 14 });
    const { ca, cb } = await crosswise(a, b);
    expect(ca.mode).toBe('tunnel');
    expect(ca.suite.ke).toBe(14);
    expect(cb.suite.ke).toBe(14);
    const pols = await a.kernel.listPolicies();
    expect(pols.some((p) => p.dir === 'fwd' && p.selector.src === '192.168.2.0/24')).toBe(true);
    expect(pols.find((p) => p.dir === 'out')?.templates[0]).toMatchObject({ mode: 'tunnel', src: a.addr, dst: b.addr });
  });

  it('PSK with AES-GCM ESP, transport, PFS on only one side fails the Quick Mode but keeps phase 1', async () => {
    const { m, a, b } = setup();
    const { v1Policy, ESP_GCM256, ESP_AES128_SHA256_PFS } = await import('../helpers/ike1-pair.js');
    a.manager.setPeer(v1Policy(a, b, {}, { espProposals: [ESP_GCM256] }));
    b.manager.setPeer(v1Policy(b, a, {}, { espProposals: [ESP_GCM256] }));
    await a.manager.initiate('b');
    await m.settle();
    const { ca } = await crosswise(a, b);
    expect(ca.suite.encr).toEqual({ id: 20, keyLen: 256 });
    expect(ca.keysIn.encKey).toHaveLength(36);

    const m2 = new V1Mesh();
    const c = m2.add('c', '10.0.0.3');
    const d = m2.add('d', '10.0.0.4');
    c.manager.setPeer(v1Policy(c, d, {}, { espProposals: [ESP_AES128_SHA256_PFS] }));
    d.manager.setPeer(v1Policy(d, c));
    await c.manager.initiate('d');
    await m2.settle();
    expect(c.manager.established('d')).toHaveLength(1);
    expect(installedChildren(c, 'd')).toHaveLength(0);
    expect(d.events.some((e) => e.type === 'child.refused')).toBe(true);
    expect(await c.kernel.listSas()).toHaveLength(1); // only the larval SPI until the Quick Mode gives up
    await m2.advance(120_000, 1000);
    expect(c.events.some((e) => e.type === 'child.failed')).toBe(true);
  });

  it('wrong PSK: responder refuses MM5, initiator gives up after retransmits', async () => {
    const { m, a, b } = setup();
    const { v1Policy } = await import('../helpers/ike1-pair.js');
    a.manager.setPeer(v1Policy(a, b, { auth: { kind: 'psk', secret: Buffer.from('not-the-same-key') } }));
    b.manager.setPeer(v1Policy(b, a));
    await a.manager.initiate('b');
    await m.settle();
    expect(b.events.find((e) => e.type === 'handshake.failed')).toMatchObject({ reason: 'AUTHENTICATION_FAILED' });
    expect(b.manager.allSas()).toHaveLength(0);
    await m.advance(120_000, 1000);
    expect(a.manager.established('b')).toHaveLength(0);
    expect(a.events.find((e) => e.type === 'handshake.failed')).toMatchObject({ reason: 'TIMEOUT' });
    expect(b.events.filter((e) => e.type === 'packet.dropped').length).toBeGreaterThan(0);
    expect(await a.kernel.listSas()).toHaveLength(0);
  });

  it('no proposal chosen: responder answers MM1 with NO-PROPOSAL-CHOSEN', async () => {
    const { m, a, b } = setup();
    const { v1Policy, P1_AES256_SHA1 } = await import('../helpers/ike1-pair.js');
    a.manager.setPeer(v1Policy(a, b, { ikeProposals: [P1_AES256_SHA1] }));
    b.manager.setPeer(v1Policy(b, a, { ikeProposals: [P1_AES128_SHA256] }));
    await a.manager.initiate('b');
    await m.settle();
    expect(m.sent).toHaveLength(2);
    expect(a.events.find((e) => e.type === 'handshake.failed')).toMatchObject({ reason: 'NO_PROPOSAL_CHOSEN' });
    expect(b.events.find((e) => e.type === 'handshake.failed')).toMatchObject({ reason: 'NO_PROPOSAL_CHOSEN' });
    expect(a.manager.allSas()).toHaveLength(0);
    expect(b.manager.allSas()).toHaveLength(0);
  });

  it('Aggressive Mode PSK when both policies enable it; refused otherwise', async () => {
    const { m, a, b } = setup();
    m.pair({ aggressive: true });
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    expect(sa?.mode).toBe('aggressive');
    expect(b.manager.established('a')[0]?.mode).toBe('aggressive');
    expect(m.sent.slice(0, 3).every((w) => w.data[18] === 4)).toBe(true);
    await crosswise(a, b);

    const m2 = new V1Mesh();
    const c = m2.add('c', '10.0.0.3');
    const d = m2.add('d', '10.0.0.4');
    const { v1Policy } = await import('../helpers/ike1-pair.js');
    c.manager.setPeer(v1Policy(c, d, { aggressive: true }));
    d.manager.setPeer(v1Policy(d, c));
    await c.manager.initiate('d');
    await m2.settle();
    expect(d.manager.established('c')).toHaveLength(0);
    expect(d.events.find((e) => e.type === 'handshake.failed')?.detail).toMatch(/Aggressive/);
  });

  it('delete from either side removes phase 2 and ISAKMP SAs on both', async () => {
    for (const side of ['a', 'b'] as const) {
      const { m, a, b } = setup();
      m.pair({ dpdAction: 'clear' });
      await a.manager.initiate('b');
      await m.settle();
      await crosswise(a, b);
      const [x, other] = side === 'a' ? [a, 'b'] : [b, 'a'];
      expect(await x.manager.terminate(other)).toBe(1);
      await m.settle();
      expect(a.manager.allSas().filter((s) => s.state !== 'destroyed')).toHaveLength(0);
      expect(b.manager.allSas().filter((s) => s.state !== 'destroyed')).toHaveLength(0);
      expect(await a.kernel.listSas()).toHaveLength(0);
      expect(await b.kernel.listSas()).toHaveLength(0);
      expect(await a.kernel.listPolicies()).toHaveLength(0);
      expect(await b.kernel.listPolicies()).toHaveLength(0);
      const peerSide = side === 'a' ? b : a;
      expect(peerSide.events.some((e) => e.type === 'delete.received' && e.what === 'esp')).toBe(true);
      expect(peerSide.events.some((e) => e.type === 'delete.received' && e.what === 'isakmp')).toBe(true);
    }
  });
});
