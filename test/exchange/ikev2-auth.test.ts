import { describe, expect, it } from 'vitest';
import { ESP_CBC, IKE_CBC_MODP, IKE_GCM_X25519, Mesh, peerPolicy } from '../helpers/ike-pair.js';

function two(limitsB = {}) {
  const m = new Mesh();
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2', limitsB);
  return { m, a, b };
}

describe('IKEv2 establishment', () => {
  it('negotiates aes128-sha256-modp2048 with an ESP CBC child when that is all the responder allows', async () => {
    const { m, a, b } = two();
    a.manager.setPeer(peerPolicy(a, b));
    b.manager.setPeer(peerPolicy(b, a, { ikeProposals: [IKE_CBC_MODP] }, { espProposals: [ESP_CBC] }));
    await a.manager.initiate('b');
    await m.settle();
    const [sa] = a.manager.established('b');
    expect(sa?.suite).toEqual({ encr: { id: 12, keyLen: 128 }, prf: 5, integ: 12, ke: 14 });
    const child = [...sa!.children.values()][0];
    expect(child?.suite).toEqual({ encr: { id: 12, keyLen: 128 }, integ: 12, esn: false });
    const sas = await b.kernel.listSas();
    expect(sas.every((s) => 'crypt' in s.algorithms && s.algorithms.crypt.name === 'cbc(aes)')).toBe(true);
  });

  it('retries IKE_SA_INIT with the group named in INVALID_KE_PAYLOAD', async () => {
    const { m, a, b } = two();
    a.manager.setPeer(peerPolicy(a, b, { ikeProposals: [{ ...IKE_GCM_X25519, ke: [31, 14] }] }));
    b.manager.setPeer(peerPolicy(b, a, { ikeProposals: [{ ...IKE_GCM_X25519, ke: [14] }] }));
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.established('b')[0]?.suite?.ke).toBe(14);
    expect(m.sent).toHaveLength(6);
    expect(b.manager.allSas()).toHaveLength(1); // the refused first attempt left no state
  });

  it('refuses an unacceptable proposal with NO_PROPOSAL_CHOSEN and keeps no state', async () => {
    const { m, a, b } = two();
    a.manager.setPeer(peerPolicy(a, b, { ikeProposals: [IKE_CBC_MODP] }));
    b.manager.setPeer(peerPolicy(b, a, { ikeProposals: [IKE_GCM_X25519] }));
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.allSas()).toHaveLength(0);
    expect(b.manager.allSas()).toHaveLength(0);
    const fail = a.events.find((e) => e.type === 'handshake.failed');
    expect(fail?.reason).toBe('NO_PROPOSAL_CHOSEN');
    expect(a.manager.peer('b')?.lastError?.code).toBe('NO_PROPOSAL_CHOSEN');
  });

  it('rejects a wrong PSK on both sides and leaves no kernel state', async () => {
    const { m, a, b } = two();
    a.manager.setPeer(peerPolicy(a, b, { auth: { kind: 'psk', secret: Buffer.from('not-the-mesh-secret-at-all!!') } }));
    b.manager.setPeer(peerPolicy(b, a));
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.allSas()).toHaveLength(0);
    expect(b.manager.allSas()).toHaveLength(0);
    expect(await a.kernel.listSas()).toHaveLength(0);
    expect(await b.kernel.listSas()).toHaveLength(0);
    expect(b.events.find((e) => e.type === 'handshake.failed')?.reason).toBe('AUTHENTICATION_FAILED');
    expect(a.manager.peer('b')?.lastError?.code).toBe('AUTHENTICATION_FAILED');
  });

  it('refuses an identity no peer is configured for', async () => {
    const { m, a, b } = two();
    a.manager.setPeer(peerPolicy({ name: 'stranger', addr: a.addr }, b));
    b.manager.setPeer(peerPolicy(b, a));
    await a.manager.initiate('b');
    await m.settle();
    expect(b.manager.allSas()).toHaveLength(0);
    expect(String(b.events.find((e) => e.type === 'handshake.failed')?.detail)).toMatch(
      /no peer configured for identity fqdn:stranger.mesh/,
    );
  });

  it('answers with a stateless COOKIE above the half-open threshold, then completes', async () => {
    const { m, a, b } = two({ cookieThreshold: 0 });
    a.manager.setPeer(peerPolicy(a, b));
    b.manager.setPeer(peerPolicy(b, a));
    await a.manager.initiate('b');
    await m.settle();
    expect(b.events.some((e) => e.type === 'cookie.sent')).toBe(true);
    expect(a.manager.established('b')).toHaveLength(1);
    expect(b.manager.established('a')).toHaveLength(1);
  });

  it('fragments IKE_AUTH when it exceeds the fragment size and reassembles it', async () => {
    const { m, a, b } = two();
    a.manager.setPeer(peerPolicy(a, b, { fragmentSize: 200 }));
    b.manager.setPeer(peerPolicy(b, a, { fragmentSize: 200 }));
    await a.manager.initiate('b');
    await m.settle();
    expect(a.manager.established('b')).toHaveLength(1);
    const frags = m.sent.filter((w) => w.data[16] === 53);
    expect(frags.length).toBeGreaterThan(2);
    expect(m.sent.every((w) => w.data.length <= 200 || w.data[18] === 34)).toBe(true);
  });

  it('narrows traffic selectors to the configured ones', async () => {
    const { m, a, b } = two();
    const { parseTrafficSelector: ts } = await import('../../src/sa/traffic-selector.js');
    a.manager.setPeer(
      peerPolicy(a, b, {}, { mode: 'tunnel', localTs: [ts('10.1.0.0/16')], remoteTs: [ts('0.0.0.0/0')] }),
    );
    b.manager.setPeer(
      peerPolicy(b, a, {}, { mode: 'tunnel', localTs: [ts('10.2.0.0/24')], remoteTs: [ts('10.1.0.0/24')] }),
    );
    await a.manager.initiate('b');
    await m.settle();
    const child = [...a.manager.established('b')[0]!.children.values()][0]!;
    const { formatTrafficSelector: f } = await import('../../src/sa/traffic-selector.js');
    expect(child.localTs.map(f)).toEqual(['10.1.0.0/24']);
    expect(child.remoteTs.map(f)).toEqual(['10.2.0.0/24']);
    expect(child.mode).toBe('tunnel');
  });
});
