import { describe, expect, it } from 'vitest';
import { nameToText } from '../../src/sa/cert-name.js';
import { certIdentity, identityMatchesCert, parseCertificate } from '../../src/sa/certs.js';
import { dnIdentity, type Identity, identityFromWire, parseIdentity } from '../../src/sa/identity.js';
import { encodeName, issue, testPki } from '../helpers/pki.js';

const pki = testPki();
// rsaLeaf SANs: DNS Peer.Example.NET, email IKE@Example.net, IP 192.0.2.7 and 2001:db8::7
const leaf = parseCertificate(pki.rsaLeaf.der);

const tlv = (tag: number, body: Buffer) => Buffer.concat([Buffer.from([tag, body.length]), body]);
const altDn = encodeName([
  ['C', 'XX'],
  ['CN', 'alt dn'],
]);
const dirNameLeaf = parseCertificate(
  issue('dirname-leaf', {
    subject: [['CN', 'dirName leaf']],
    issuer: pki.ecCa,
    keyType: 'ec',
    extra: [{ oid: '2.5.29.17', critical: false, value: tlv(0x30, tlv(0xa4, altDn)) }],
  }).der,
);

/** The leaf's subject with UTF8String instead of PrintableString values: same text, other DER. */
const utf8Subject = Buffer.from(leaf.subjectDer);
for (let i = 0; i + 3 < utf8Subject.length; i++) {
  if (utf8Subject[i] === 0x55 && utf8Subject[i + 1] === 0x04 && utf8Subject[i + 3] === 0x13) utf8Subject[i + 3] = 0x0c;
}

const wire = (type: number, data: string | Buffer) =>
  identityFromWire(type, typeof data === 'string' ? Buffer.from(data, 'latin1') : data)!;

const table: [string, Identity, boolean][] = [
  ['FQDN, same case', parseIdentity('fqdn:Peer.Example.NET'), true],
  ['FQDN, other case', parseIdentity('fqdn:peer.example.net'), true],
  ['FQDN from the wire, upper case', wire(2, 'PEER.EXAMPLE.NET'), true],
  ['FQDN with a trailing dot', wire(2, 'peer.example.net.'), true],
  ['FQDN, different host', parseIdentity('fqdn:other.example.net'), false],
  ['FQDN, suffix only', parseIdentity('fqdn:example.net'), false],
  ['FQDN, longer name', parseIdentity('fqdn:x.peer.example.net'), false],
  ['empty FQDN', wire(2, ''), false],
  ['email, other case', parseIdentity('email:ike@example.NET'), true],
  ['email, other mailbox', parseIdentity('email:root@example.net'), false],
  ['email as FQDN', parseIdentity('fqdn:example.net'), false],
  ['FQDN as email', wire(3, 'Peer.Example.NET'), false],
  ['IPv4', parseIdentity('ip:192.0.2.7'), true],
  ['IPv4, other address', parseIdentity('ip:192.0.2.8'), false],
  ['IPv6', parseIdentity('ip:2001:db8:0::7'), true],
  ['IPv6, other address', parseIdentity('ip:2001:db8::8'), false],
  ['IPv4-mapped IPv6 of a v4 SAN', parseIdentity('ip:::ffff:192.0.2.7'), false],
  ['DN of the subject', dnIdentity(leaf.subjectDer), true],
  ['DN of the issuer', dnIdentity(leaf.issuerDer), false],
  ['DN whose text matches but DER differs', dnIdentity(utf8Subject), false],
  ['KEY_ID with the SPKI hash', wire(11, leaf.spkiSha1), false],
];

describe('identityMatchesCert (RFC 4945)', () => {
  it.each(table)('%s', (_name, id, expected) => {
    expect(identityMatchesCert(id, leaf)).toBe(expected);
  });

  it('DN matches a directoryName subjectAltName as well as the subject', () => {
    expect(dirNameLeaf.san.dirNames).toEqual([altDn]);
    expect(identityMatchesCert(dnIdentity(altDn), dirNameLeaf)).toBe(true);
    expect(identityMatchesCert(certIdentity(dirNameLeaf), dirNameLeaf)).toBe(true);
    expect(identityMatchesCert(dnIdentity(altDn), leaf)).toBe(false);
  });

  it('the UTF8String variant of the subject has the same text', () => {
    expect(utf8Subject.equals(leaf.subjectDer)).toBe(false);
    expect(nameToText(utf8Subject)).toBe(leaf.subjectText);
  });

  it('never falls back to the subject CN for FQDN identities', () => {
    const cnOnly = parseCertificate(
      issue('cn-only', { subject: [['CN', 'cn-only.example']], issuer: pki.ecCa, keyType: 'ec' }).der,
    );
    expect(cnOnly.subjectText).toBe('CN=cn-only.example');
    expect(identityMatchesCert(parseIdentity('fqdn:cn-only.example'), cnOnly)).toBe(false);
  });

  it('certIdentity round-trips through the wire form', () => {
    const id = certIdentity(leaf);
    expect(wire(9, id.data)).toEqual(id);
    expect(identityMatchesCert(wire(9, id.data), leaf)).toBe(true);
  });
});
