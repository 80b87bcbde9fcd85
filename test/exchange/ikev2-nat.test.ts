import { describe, expect, it } from 'vitest';
import { formatTrafficSelector, parseTrafficSelector as ts } from '../../src/sa/traffic-selector.js';
import { Mesh, peerPolicy } from '../helpers/ike-pair.js';

describe('IKEv2 NAT traversal', () => {
  function natPair() {
    const m = new Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '198.51.100.2');
    m.natBehind(a, '203.0.113.9', 40000);
    const tunnel = (local: string, remote: string) => ({
      mode: 'tunnel' as const,
      localTs: [ts(local)],
      remoteTs: [ts(remote)],
    });
    a.manager.setPeer(peerPolicy(a, b, {}, tunnel('10.1.0.0/24', '10.2.0.0/24')));
    // b knows a by identity; a's address is the NAT's.
    b.manager.setPeer(peerPolicy(b, { name: 'a', addr: '203.0.113.9' }, {}, tunnel('10.2.0.0/24', '10.1.0.0/24')));
    return { m, a, b };
  }

  it('detects the NAT, floats to 4500 and UDP-encapsulates the Child SA', async () => {
    const { m, a, b } = natPair();
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    const [sb] = b.manager.established('a');
    expect(sa?.nat).toEqual({ local: true, remote: false });
    expect(sb?.nat).toEqual({ local: false, remote: true });
    expect(sa?.local.port).toBe(4500);
    expect(sb?.remote).toEqual({ addr: '203.0.113.9', port: 40001 });
    const ka = await a.kernel.listSas();
    const kb = await b.kernel.listSas();
    expect(ka.every((s) => s.encap?.sport !== undefined)).toBe(true);
    const out = kb.find((s) => s.src === '198.51.100.2');
    expect(out?.encap).toEqual({ sport: 4500, dport: 40001 });
    // Keepalives from the NATed side only.
    await m.advance(25_000, 1000);
    const keepalives = m.sent.filter((w) => w.data.length === 1 && w.data[0] === 0xff);
    expect(keepalives.length).toBeGreaterThanOrEqual(1);
    expect(keepalives.every((w) => w.from.addr === '10.0.0.1')).toBe(true);
  });

  it('follows a NAT mapping that moves to another address: each Child SA is re-keyed there, nothing stays at the old one', async () => {
    const { m, a, b } = natPair();
    await a.manager.initiate('b');
    await m.settle();
    const [sb] = b.manager.established('a');
    const [oldB] = [...sb!.children.values()];
    // The NAT now maps a to another public address.
    m.natBehind(a, '203.0.113.77', 50000);
    const [sa] = a.manager.established('b');
    const alive = sa!.probe();
    await m.settle();
    expect(await alive).toBe('alive');
    await m.advance(5000, 500);
    expect(sb?.remote).toEqual({ addr: '203.0.113.77', port: 50000 });
    // One pair on each side, the new one, the same on both.
    const liveB = [...sb!.children.values()].filter((c) => c.state === 'installed');
    const liveA = [...sa!.children.values()].filter((c) => c.state === 'installed');
    expect(liveB).toHaveLength(1);
    expect(liveA).toHaveLength(1);
    expect(liveB[0]).not.toBe(oldB);
    expect(liveB[0]?.spiOut).toBe(liveA[0]?.spiIn);
    // b's kernel: the outbound SA and the tunnel's outbound policy at the new address; nothing at the old one.
    const kb = await b.kernel.listSas();
    expect(kb.filter((s) => s.dst === '203.0.113.9')).toEqual([]);
    expect(kb.find((s) => s.spi === liveB[0]?.spiOut)).toMatchObject({ dst: '203.0.113.77', encap: { dport: 50000 } });
    const out = (await b.kernel.listPolicies()).filter((p) => p.dir === 'out' && p.templates.length > 0);
    expect(out.length).toBeGreaterThan(0);
    expect(out.every((p) => p.templates[0]?.dst === '203.0.113.77')).toBe(true);
    expect(b.events.some((e) => e.type === 'kernel.error')).toBe(false);
  });

  it("transport mode, b configured with a's NAT address (a 1:1 NAT): a's private selector is taken as the NAT's, both ways (RFC 7296 2.23.1)", async () => {
    const m = new Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '198.51.100.2');
    m.natBehind(a, '203.0.113.9', 40000);
    a.manager.setPeer(peerPolicy(a, b, {}));
    // b knows a only by the NAT's address: its transport selectors are 198.51.100.2 <-> 203.0.113.9.
    b.manager.setPeer(peerPolicy(b, { name: 'a', addr: '203.0.113.9' }, {}));
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    const [sb] = b.manager.established('a');
    const [ca] = [...sa!.children.values()];
    const [cb] = [...sb!.children.values()];
    expect(ca?.state).toBe('installed');
    expect(cb?.state).toBe('installed');
    expect(ca?.mode).toBe('transport');
    expect(cb?.spiIn).toBe(ca?.spiOut);
    // b's Child SA is in terms of the addresses it sees; a's in its own.
    expect(cb?.remoteTs.map(formatTrafficSelector)).toEqual(['203.0.113.9/32']);
    expect(ca?.localTs.map(formatTrafficSelector)).toEqual(['10.0.0.1/32']);
    expect(cb?.natOa).toBe('10.0.0.1');
    expect((await b.kernel.listSas()).every((s) => s.encap !== undefined)).toBe(true);
    // b re-keys: it proposes a by the NAT's address, a takes it as its own.
    await sb!.queue.run(() => sb!.rekeyChild(cb!));
    await m.settle();
    const fresh = [...sa!.children.values()].filter((c) => c.state === 'installed' && c.uid !== ca?.uid);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]?.localTs.map(formatTrafficSelector)).toEqual(['10.0.0.1/32']);
    expect([...a.events, ...b.events].some((e) => e.type === 'child.failed')).toBe(false);
  });

  it('follows a NAT mapping change after an authenticated message', async () => {
    const { m, a, b } = natPair();
    await a.manager.initiate('b');
    await m.settle();
    m.rebindNat(a, 50000);
    const [sa] = a.manager.established('b');
    const alive = sa!.probe();
    await m.settle();
    expect(await alive).toBe('alive');
    const [sb] = b.manager.established('a');
    expect(sb?.remote).toEqual({ addr: '203.0.113.9', port: 50000 });
    const out = (await b.kernel.listSas()).find((s) => s.src === '198.51.100.2');
    expect(out?.encap?.dport).toBe(50000);
    expect(b.events.some((e) => e.type === 'nat.mapping')).toBe(true);
  });
});
