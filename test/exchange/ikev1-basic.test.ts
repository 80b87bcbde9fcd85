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
