import { describe, expect, it } from 'vitest';
import { formatTrafficSelector } from '../../src/sa/traffic-selector.js';
import { installedChildren, V1Mesh, v1Policy } from '../helpers/ike1-pair.js';

describe('IKEv1 NAT traversal (RFC 3947/3948)', () => {
  it('a NATed initiator: NAT-D detects it, Main Mode 5 floats to 4500, ESP is UDP-encapsulated, keepalives flow', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0, natKeepaliveMs: 20_000 }, { mode: 'tunnel' });
    m.natBehind(a, '198.51.100.7');
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    const [sb] = b.manager.established('a');
    expect(sa?.nat).toEqual({ local: true, remote: false });
    expect(sb?.nat).toEqual({ local: false, remote: true });
    expect(sa?.local.port).toBe(4500);
    expect(sb?.local.port).toBe(4500);
    expect(sb?.remote.addr).toBe('198.51.100.7');
    // MM1-MM4 on 500, MM5 onwards on 4500.
    const fromA = m.sent.filter((w) => w.from.addr === a.addr);
    expect(fromA.slice(0, 2).every((w) => w.from.port === 500)).toBe(true);
    expect(fromA.slice(2).every((w) => w.from.port === 4500 && w.to.port === 4500)).toBe(true);
    const ca = installedChildren(a, 'b');
    const cb = installedChildren(b, 'a');
    expect(ca[0]!.encap).toBe(true);
    expect(cb[0]!.encap).toBe(true);
    expect(ca[0]!.spiIn).toBe(cb[0]!.spiOut);
    const outB = (await b.kernel.listSas()).find((s) => s.src === b.addr)!;
    expect(outB.dst).toBe('198.51.100.7');
    expect(outB.encap?.sport).toBe(4500);
    expect(outB.encap?.dport).toBe(sb!.remote.port);
    const outA = (await a.kernel.listSas()).find((s) => s.src === a.addr)!;
    expect(outA.encap).toMatchObject({ sport: 4500, dport: 4500 });
    const before = m.sent.length;
    await m.advance(45_000, 1000);
    const keepalives = m.sent.slice(before).filter((w) => w.data.length === 1 && w.data[0] === 0xff);
    expect(keepalives.length).toBeGreaterThanOrEqual(2);
    expect(keepalives.every((w) => w.from.addr === a.addr && w.from.port === 4500)).toBe(true);
    expect(b.manager.established('a')).toHaveLength(1);
  });

  it('transport mode under NAT carries NAT-OA and negotiates UDP-encapsulated transport', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 });
    m.natBehind(a, '198.51.100.7');
    await a.manager.initiate('b');
    await m.settle();
    const ca = installedChildren(a, 'b');
    const cb = installedChildren(b, 'a');
    expect(ca).toHaveLength(1);
    expect(cb).toHaveLength(1);
    expect(ca[0]!.mode).toBe('transport');
    expect(cb[0]!.encap).toBe(true);
    // Each side's inbound SA carries the peer's original address from its NAT-OA (RFC 3947 5.2):
    // b sees a from 198.51.100.7, a's NAT-OAi says 10.0.0.1; a sees b as it is.
    const inB = (await b.kernel.listSas()).find((s) => s.dst === b.addr)!;
    const inA = (await a.kernel.listSas()).find((s) => s.dst === a.addr)!;
    expect(inB.src).toBe('198.51.100.7');
    expect(inB.encap?.oa).toBe(a.addr);
    expect(inA.encap?.oa).toBe(b.addr);
    // The same when b initiates the next Quick Mode (a rekey): the roles of the NAT-OA payloads swap.
    const [sb] = b.manager.established('a');
    await sb!.queue.run(() => sb!.rekeyChild?.(cb[0]!));
    await m.settle();
    const fresh = (await b.kernel.listSas()).filter((s) => s.dst === b.addr && s.spi !== inB.spi);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]!.encap?.oa).toBe(a.addr);
    const freshA = (await a.kernel.listSas()).filter((s) => s.dst === a.addr && s.spi !== inA.spi);
    expect(freshA).toHaveLength(1);
    expect(freshA[0]!.encap?.oa).toBe(b.addr);
  });

  it("transport mode, b configured with a's NAT address (a 1:1 NAT): a's private client ID is taken as the NAT's, both ways", async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.natBehind(a, '198.51.100.7');
    a.manager.setPeer(v1Policy(a, b, { dpdDelayMs: 0 }));
    // b knows a only by the NAT's address: its transport selectors are 10.0.0.2 <-> 198.51.100.7.
    b.manager.setPeer(v1Policy(b, { name: 'a', addr: '198.51.100.7' }, { dpdDelayMs: 0 }));
    await a.manager.initiate('b');
    await m.settle();
    const [ca] = installedChildren(a, 'b');
    const [cb] = installedChildren(b, 'a');
    expect(ca?.mode).toBe('transport');
    expect(cb?.spiIn).toBe(ca?.spiOut);
    expect(cb?.remoteTs.map(formatTrafficSelector)).toEqual(['198.51.100.7/32']);
    expect(ca?.localTs.map(formatTrafficSelector)).toEqual(['10.0.0.1/32']);
    expect((await b.kernel.listSas()).find((s) => s.dst === b.addr)?.encap?.oa).toBe(a.addr);
    expect(b.events.some((e) => e.type === 'child.refused')).toBe(false);
    // b's own Quick Mode (a rekey) names a by the NAT's address; a takes it as its own.
    const [sb] = b.manager.established('a');
    await sb!.queue.run(() => sb!.rekeyChild?.(cb!));
    await m.settle();
    const fresh = installedChildren(a, 'b').filter((c) => c.uid !== ca?.uid);
    expect(fresh).toHaveLength(1);
    expect(fresh[0]?.localTs.map(formatTrafficSelector)).toEqual(['10.0.0.1/32']);
    expect(a.events.some((e) => e.type === 'child.refused')).toBe(false);
  });

  it("follows the peer's NAT mapping after an authentic message: a new port updates the outbound SA, a new address re-keys the pair there", async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 }, { mode: 'tunnel' });
    m.natBehind(a, '198.51.100.7', 40000);
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    const [sb] = b.manager.established('a');
    // The NAT forgets its mappings: a's next message (a DPD) arrives from a new port.
    m.rebindNat(a, 41000);
    let alive = sa!.probe!();
    await m.settle();
    expect(await alive).toBe('alive');
    expect(sb?.remote).toEqual({ addr: '198.51.100.7', port: 41000 });
    const [first] = installedChildren(b, 'a');
    expect((await b.kernel.listSas()).find((s) => s.spi === first?.spiOut)?.encap?.dport).toBe(41000);
    // The NAT maps a to another address: the pair is re-keyed there.
    m.natBehind(a, '198.51.100.99', 42000);
    alive = sa!.probe!();
    await m.settle();
    expect(await alive).toBe('alive');
    await m.advance(5000, 500);
    expect(sb?.remote).toEqual({ addr: '198.51.100.99', port: 42000 });
    const live = installedChildren(b, 'a');
    expect(live).toHaveLength(1);
    expect(live[0]).not.toBe(first);
    expect(installedChildren(a, 'b').map((c) => c.spiIn)).toEqual([live[0]?.spiOut]);
    const kb = await b.kernel.listSas();
    expect(kb.filter((s) => s.dst === '198.51.100.7')).toEqual([]);
    expect(kb.find((s) => s.spi === live[0]?.spiOut)).toMatchObject({ dst: '198.51.100.99', encap: { dport: 42000 } });
    const out = (await b.kernel.listPolicies()).filter((p) => p.dir === 'out' && p.templates.length > 0);
    expect(out.length).toBeGreaterThan(0);
    expect(out.every((p) => p.templates[0]?.dst === '198.51.100.99')).toBe(true);
    expect(b.events.filter((e) => e.type === 'nat.mapping')).toHaveLength(2);
  });

  it('tunnel mode under NAT: no NAT-OA, so no encap OA', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 }, { mode: 'tunnel' });
    m.natBehind(a, '198.51.100.7');
    await a.manager.initiate('b');
    await m.settle();
    const sas = [...(await a.kernel.listSas()), ...(await b.kernel.listSas())];
    expect(sas).toHaveLength(4);
    expect(sas.every((s) => s.encap !== undefined && s.encap.oa === undefined)).toBe(true);
  });

  it('no NAT: no float, no encapsulation', async () => {
    const m = new V1Mesh();
    const a = m.add('a', '10.0.0.1');
    m.add('b', '10.0.0.2');
    m.pair({ dpdDelayMs: 0 });
    await a.manager.initiate('b');
    await m.settle();
    expect(m.sent.every((w) => w.from.port === 500 && w.to.port === 500)).toBe(true);
    expect(installedChildren(a, 'b')[0]!.encap).toBe(false);
  });
});
