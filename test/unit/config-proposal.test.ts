import { describe, expect, test } from 'vitest';
import { parseDuration, parseIdentity, parsePrefix, parseProposal } from '../../src/config/index.js';

const ids = (r: ReturnType<typeof parseProposal>) => {
  if (!r.ok) throw new Error(r.message);
  const p = r.proposal;
  return {
    encr: p.encr.map((t) => [t.id, t.keyBits]),
    prf: p.prf.map((t) => t.id),
    integ: p.integ.map((t) => t.id),
    ke: p.ke.map((t) => t.id),
    esn: p.esn.map((t) => t.id),
  };
};

describe('parseProposal', () => {
  test('AEAD IKE proposal', () => {
    expect(ids(parseProposal('aes256gcm16-prfsha256-x25519', 'ike'))).toEqual({
      encr: [[20, 256]],
      prf: [5],
      integ: [],
      ke: [31],
      esn: [],
    });
  });
  test('non-AEAD IKE proposal derives the PRF from the integrity algorithm', () => {
    expect(ids(parseProposal('aes128-sha256-modp2048', 'ike'))).toEqual({
      encr: [[12, 128]],
      prf: [5],
      integ: [12],
      ke: [14],
      esn: [],
    });
  });
  test('lists of algorithms of one kind', () => {
    expect(ids(parseProposal('aes128gcm16-aes256gcm16-prfsha384-ecp256-x25519', 'ike')).encr).toEqual([
      [20, 128],
      [20, 256],
    ]);
  });
  test('ESP proposals default to no ESN and accept esn', () => {
    expect(ids(parseProposal('aes256gcm16', 'esp')).esn).toEqual([0]);
    expect(ids(parseProposal('chacha20poly1305-esn-x25519', 'esp'))).toEqual({
      encr: [[28, 256]],
      prf: [],
      integ: [],
      ke: [31],
      esn: [1],
    });
  });
  test.each([
    ['aes256-sha265-modp2048', 'ike', 'proposal "aes256-sha265-modp2048": unknown algorithm "sha265"'],
    ['aes256gcm16-x25519', 'ike', 'proposal "aes256gcm16-x25519": an AEAD IKE proposal needs a PRF (e.g. prfsha256)'],
    [
      'aes256-prfsha256-x25519',
      'ike',
      'proposal "aes256-prfsha256-x25519": a non-AEAD cipher needs an integrity algorithm (e.g. sha256)',
    ],
    ['aes256-sha256', 'ike', 'proposal "aes256-sha256": names no key exchange group (e.g. x25519 or modp2048)'],
    ['aes256gcm16-sha256', 'esp', 'proposal "aes256gcm16-sha256": an AEAD cipher takes no integrity algorithm'],
    [
      'aes256gcm16-aes256-sha1',
      'esp',
      'proposal "aes256gcm16-aes256-sha1": mixes AEAD (gcm, chacha20poly1305) and non-AEAD ciphers',
    ],
    [
      'aes256gcm16-prfsha256',
      'esp',
      'proposal "aes256gcm16-prfsha256": "prfsha256" is a PRF, which ESP proposals do not take',
    ],
    [
      'aes256gcm16-prfsha256-x25519-esn',
      'ike',
      'proposal "aes256gcm16-prfsha256-x25519-esn": "esn" applies to ESP only',
    ],
    ['aes256--sha256', 'esp', 'proposal "aes256--sha256": has an empty token'],
    ['sha256-x25519', 'esp', 'proposal "sha256-x25519": names no encryption algorithm (e.g. aes256gcm16 or aes256)'],
    ['aes256-aes256-sha1', 'esp', 'proposal "aes256-aes256-sha1": "aes256" is listed twice'],
  ] as const)('%s (%s) is refused', (text, kind, message) => {
    expect(parseProposal(text, kind)).toEqual({ ok: false, message });
  });
});

describe('scalar parsers', () => {
  test('durations', () => {
    expect(parseDuration('4h')).toBe(14_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('0s')).toBe(0);
    for (const bad of ['', '10', '10 s', 's', '1.5h', '-1s']) expect(parseDuration(bad)).toBeUndefined();
  });
  test('prefixes', () => {
    expect(parsePrefix('10.0.0.1')).toEqual({ family: 4, address: '10.0.0.1', length: 32, text: '10.0.0.1/32' });
    expect(parsePrefix('fd00::/64')?.length).toBe(64);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', '10.0.0/8', '10.0.0.0/', 'x/1'])
      expect(parsePrefix(bad)).toBeUndefined();
  });
  test('identities', () => {
    expect(parseIdentity('keyid:0A1B')).toEqual({ ok: true, id: { type: 'keyid', value: '0a1b' } });
    expect(parseIdentity('email:ops@example.org')).toEqual({
      ok: true,
      id: { type: 'email', value: 'ops@example.org' },
    });
    expect(parseIdentity('dn:CN=a,O=b').ok).toBe(true);
    for (const bad of ['ip:10.0.0.300', 'fqdn:-bad-', 'keyid:abc', 'email:nope', 'dn:noequals', '10.0.0.1'])
      expect(parseIdentity(bad).ok).toBe(false);
  });
});
