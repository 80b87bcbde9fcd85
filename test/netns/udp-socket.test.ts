import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { XfrmKernel } from '../../src/kernel/xfrm/kernel.js';
import { DEFAULT_OWNERSHIP } from '../../src/kernel/xfrm/ownership.js';
import { IkeUdpSocket, type UdpDatagram } from '../../src/net/udp-socket.js';
import { Netns, requireNetnsPrivileges, waitFor } from './netns-helpers.js';

const spaces: Netns[] = [];
const sockets: IkeUdpSocket[] = [];
function fresh(): Netns {
  const ns = new Netns();
  spaces.push(ns);
  return ns;
}
function open(ns: Netns, opts: Partial<Parameters<typeof IkeUdpSocket.open>[0]>, inbox: UdpDatagram[]) {
  const s = IkeUdpSocket.open({ family: 4, port: 0, netns: ns.name, onMessage: (d) => inbox.push(d), ...opts });
  sockets.push(s);
  return s;
}

beforeAll(() => requireNetnsPrivileges());
afterAll(() => {
  for (const s of sockets) s.close();
  for (const ns of spaces) ns.delete();
});

describe('IkeUdpSocket in a netns', () => {
  it('exchanges datagrams; pktinfo reports the local address; replies leave from localAddr', async () => {
    const ns = fresh();
    ns.ip('addr', 'add', '10.66.0.1/32', 'dev', 'lo');
    ns.ip('addr', 'add', '10.66.0.2/32', 'dev', 'lo');
    const aIn: UdpDatagram[] = [];
    const bIn: UdpDatagram[] = [];
    const a = open(ns, {}, aIn); // wildcard
    const b = open(ns, { bindAddress: '10.66.0.1' }, bIn);
    expect(a.localPort).toBeGreaterThan(0);

    b.send(Buffer.from('to .2'), '10.66.0.2', a.localPort);
    const d1 = await waitFor('datagram at a', () => aIn[0]);
    expect(d1.payload.toString()).toBe('to .2');
    expect(d1.localAddr).toBe('10.66.0.2');
    expect(d1.remoteAddr).toBe('10.66.0.1');
    expect(d1.remotePort).toBe(b.localPort);
    expect(d1.ifindex).toBe(1); // lo

    b.send(Buffer.from('to .1'), '10.66.0.1', a.localPort);
    const d2 = await waitFor('second datagram at a', () => aIn[1]);
    expect(d2.localAddr).toBe('10.66.0.1');

    a.send(Buffer.from('reply'), d1.remoteAddr, d1.remotePort, d1.localAddr);
    const r1 = await waitFor('reply at b', () => bIn[0]);
    expect(r1).toMatchObject({ remoteAddr: '10.66.0.2', remotePort: a.localPort });
    a.send(Buffer.from('reply'), d2.remoteAddr, d2.remotePort, '10.66.0.1');
    const r2 = await waitFor('second reply at b', () => bIn[1]);
    expect(r2.remoteAddr).toBe('10.66.0.1');
  });

  it('IPv6: pktinfo and source selection', async () => {
    const ns = fresh();
    ns.ip('-6', 'addr', 'add', 'fd00::1/128', 'dev', 'lo', 'nodad');
    ns.ip('-6', 'addr', 'add', 'fd00::2/128', 'dev', 'lo', 'nodad');
    const aIn: UdpDatagram[] = [];
    const bIn: UdpDatagram[] = [];
    const a = open(ns, { family: 6 }, aIn);
    const b = open(ns, { family: 6, bindAddress: 'fd00::1' }, bIn);
    b.send(Buffer.from('x'), 'fd00::2', a.localPort);
    const d = await waitFor('v6 datagram', () => aIn[0]);
    expect(d).toMatchObject({ localAddr: 'fd00::2', remoteAddr: 'fd00::1' });
    a.send(Buffer.from('y'), d.remoteAddr, d.remotePort, 'fd00::2');
    expect((await waitFor('v6 reply', () => bIn[0])).remoteAddr).toBe('fd00::2');
  });

  it('opens the encap socket on 4500, v4 and v6', () => {
    const ns = fresh();
    const s4 = open(ns, { port: 4500, encap: true }, []);
    const s6 = open(ns, { family: 6, port: 4500, encap: true }, []);
    expect(s4.localPort).toBe(4500);
    expect(s6.localPort).toBe(4500);
    expect(s4.encap).toBe(true);
  });

  it('reports socket errors as CoatiError with errno/syscall in cause', () => {
    const ns = fresh();
    expect(() => open(ns, { bindAddress: '203.0.113.9' }, [])).toThrow(
      expect.objectContaining({
        code: 'UDP_SOCKET',
        cause: expect.objectContaining({ code: 'EADDRNOTAVAIL', syscall: 'bind', errno: 99 }),
      }),
    );
    expect(() => IkeUdpSocket.open({ family: 4, port: 0, netns: 'coati-t-missing', onMessage: () => {} })).toThrow(
      expect.objectContaining({ code: 'UDP_SOCKET', cause: expect.objectContaining({ code: 'ENOENT' }) }),
    );
  });

  it('IKE sockets bypass a coati block-all policy that stops other traffic', async () => {
    // Two namespaces over a veth pair; the block policies live in `ns` (both directions).
    const ns = fresh();
    const peer = fresh();
    ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', peer.name);
    ns.ip('addr', 'add', '10.77.0.1/24', 'dev', 'v0');
    peer.ip('addr', 'add', '10.77.0.2/24', 'dev', 'v1');
    ns.ip('link', 'set', 'v0', 'up');
    peer.ip('link', 'set', 'v1', 'up');
    const k = await XfrmKernel.open({ netns: ns.name });
    try {
      for (const dir of ['out', 'in'] as const) {
        await k.addPolicy({
          selector: { src: '0.0.0.0/0', dst: '0.0.0.0/0' },
          dir,
          action: 'block',
          priority: DEFAULT_OWNERSHIP.priorityMin,
          templates: [],
        });
      }
      // Control: an ordinary socket is blocked by the policy.
      const plain = ns.exec(['bash', '-c', 'echo x > /dev/udp/10.77.0.2/9']);
      expect(plain.status).not.toBe(0);
      expect(plain.out).toMatch(/not permitted/i);
      const aIn: UdpDatagram[] = [];
      const bIn: UdpDatagram[] = [];
      const a = open(ns, { port: 500 }, aIn);
      const b = open(peer, { port: 500, bypass: false }, bIn);
      b.send(Buffer.from('ike'), '10.77.0.1', 500);
      const got = await waitFor('IKE in through the block policy', () => aIn[0]);
      expect(got).toMatchObject({ remoteAddr: '10.77.0.2', localAddr: '10.77.0.1' });
      a.send(Buffer.from('back'), '10.77.0.2', 500);
      expect((await waitFor('IKE out through the block policy', () => bIn[0])).payload.toString()).toBe('back');
      // The same socket without the bypass policy is blocked.
      const c = open(ns, { bypass: false }, []);
      expect(() => c.send(Buffer.from('x'), '10.77.0.2', 500)).toThrow(
        expect.objectContaining({ cause: expect.objectContaining({ code: 'EPERM', syscall: 'sendmsg' }) }),
      );
    } finally {
      await k.close();
    }
  });
});
