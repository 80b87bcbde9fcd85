import { describe, expect, it } from 'vitest';
import { MalformedMessageError } from '../../src/wire/errors.js';
import {
  formatV1IdData,
  V1IdType as I,
  ipFromText,
  ipToText,
  maskToPrefix,
  v1IdAddressRange,
  v1IdDataFromText,
} from '../../src/wire/ikev1/index.js';

const h = (s: string) => Buffer.from(s, 'hex');

describe('IKEv1 ID data helpers', () => {
  it('formats IPv4 address, subnet and range IDs', () => {
    expect(formatV1IdData(I.IPV4_ADDR, h('c6336401'))).toBe('198.51.100.1');
    expect(formatV1IdData(I.IPV4_ADDR_SUBNET, h('0a010000ffffff00'))).toBe('10.1.0.0/24');
    expect(formatV1IdData(I.IPV4_ADDR_SUBNET, h('0a010000ff00ff00'))).toBe('10.1.0.0/255.0.255.0');
    expect(formatV1IdData(I.IPV4_ADDR_RANGE, h('0a0100010a0100fe'))).toBe('10.1.0.1-10.1.0.254');
  });

  it('formats IPv6 IDs with RFC 5952 compression', () => {
    const sub = Buffer.concat([h('20010db8000000000000000000000000'), h('ffffffffffff00000000000000000000')]);
    expect(formatV1IdData(I.IPV6_ADDR_SUBNET, sub)).toBe('2001:db8::/48');
    expect(formatV1IdData(I.IPV6_ADDR, h('00000000000000000000000000000001'))).toBe('::1');
    expect(ipToText(h('20010db8000100000001000000000001'))).toBe('2001:db8:1:0:1::1');
    expect(ipToText(h('20010db8000000010000000000000000'))).toBe('2001:db8:0:1::');
    expect(formatV1IdData(I.IPV6_ADDR_RANGE, Buffer.concat([ipFromText('fe80::1'), ipFromText('fe80::ff')]))).toBe(
      'fe80::1-fe80::ff',
    );
  });

  it('formats name and opaque IDs', () => {
    expect(formatV1IdData(I.FQDN, Buffer.from('left.psk.rig.test'))).toBe('left.psk.rig.test');
    expect(formatV1IdData(I.KEY_ID, h('0102'))).toBe('0x0102');
  });

  it('turns address IDs into inclusive ranges', () => {
    expect(v1IdAddressRange(I.IPV4_ADDR_SUBNET, h('0a0100ffffffff00'))).toEqual({
      start: h('0a010000'),
      end: h('0a0100ff'),
    });
    expect(v1IdAddressRange(I.IPV4_ADDR, h('01020304'))).toEqual({ start: h('01020304'), end: h('01020304') });
    expect(v1IdAddressRange(I.FQDN, Buffer.from('x'))).toBeUndefined();
  });

  it('rejects wrong lengths and inverted ranges with MalformedMessageError', () => {
    expect(() => formatV1IdData(I.IPV4_ADDR, h('010203'))).toThrow(MalformedMessageError);
    expect(() => formatV1IdData(I.IPV6_ADDR_SUBNET, Buffer.alloc(16))).toThrow(/needs 32 octets/);
    expect(() => v1IdAddressRange(I.IPV4_ADDR_RANGE, h('0a0100020a010001'))).toThrow(/range start after range end/);
  });

  it('builds ID data from text and round-trips through the formatter', () => {
    for (const [t, text] of [
      [I.IPV4_ADDR, '198.51.100.2'],
      [I.IPV4_ADDR_SUBNET, '10.2.0.0/24'],
      [I.IPV4_ADDR_RANGE, '10.0.0.1-10.0.0.9'],
      [I.IPV6_ADDR, '2001:db8::5'],
      [I.IPV6_ADDR_SUBNET, 'fd00:1::/64'],
      [I.IPV6_ADDR_SUBNET, '::/0'],
      [I.USER_FQDN, 'a@b.test'],
    ] as const) {
      expect(formatV1IdData(t, v1IdDataFromText(t, text))).toBe(text);
    }
    expect(v1IdDataFromText(I.IPV4_ADDR_SUBNET, '10.2.0.77/24').toString('hex')).toBe('0a020000ffffff00');
    expect(() => v1IdDataFromText(I.IPV4_ADDR, '2001:db8::1')).toThrow(/family/);
    expect(() => v1IdDataFromText(I.IPV4_ADDR_SUBNET, '10.0.0.0/33')).toThrow(/bad subnet/);
    expect(() => ipFromText('not-an-ip')).toThrow();
  });

  it('computes prefix lengths of masks', () => {
    expect(maskToPrefix(h('ffffff00'))).toBe(24);
    expect(maskToPrefix(h('00000000'))).toBe(0);
    expect(maskToPrefix(h('ffffffff'))).toBe(32);
    expect(maskToPrefix(h('ff00ff00'))).toBeUndefined();
  });
});
