import { describe, expect, it } from 'vitest';
import {
  formatTrafficSelector,
  fromWireSelector,
  intersect,
  narrow,
  natSubstitute,
  rangeToPrefixes,
  toWireSelector,
  parseTrafficSelector as ts,
} from '../../src/sa/traffic-selector.js';
import { bytesToIp, ipToBytes } from '../../src/util/ip.js';

describe('ip helpers', () => {
  it.each([
    ['::', '::'],
    ['fd00::1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:10.1.2.3', '::ffff:a01:203'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('%s round-trips to %s', (a, b) => {
    expect(bytesToIp(ipToBytes(a))).toBe(b);
  });
});

describe('traffic selectors', () => {
  it('parses and formats prefixes, hosts and ports', () => {
    expect(formatTrafficSelector(ts('10.1.0.7/24'))).toBe('10.1.0.0/24');
    expect(formatTrafficSelector(ts('10.1.0.7'))).toBe('10.1.0.7/32');
    expect(formatTrafficSelector(ts('fd00::/64[udp/500]'))).toBe('fd00::/64[udp/500]');
    expect(formatTrafficSelector(ts('0.0.0.0/0[tcp/1000-2000]'))).toBe('0.0.0.0/0[tcp/1000-2000]');
  });
  it('rejects bad input with a message naming it', () => {
    expect(() => ts('10.1.0.0/33')).toThrow(/prefix length/);
    expect(() => ts('10.1.0.300/24')).toThrow(/bad address/);
    expect(() => ts('10.0.0.0/8[udp/9-3]')).toThrow(/port range/);
    expect(() => ts('10.0.0.0/8[bogus]')).toThrow(/protocol/);
  });
  it('intersects and narrows', () => {
    expect(intersect(ts('10.0.0.0/8'), ts('10.1.0.0/16'))).toEqual(ts('10.1.0.0/16'));
    expect(intersect(ts('10.0.0.0/8'), ts('192.168.0.0/16'))).toBeUndefined();
    expect(intersect(ts('10.0.0.0/8'), ts('fd00::/8'))).toBeUndefined();
    expect(intersect(ts('10.0.0.0/8[tcp]'), ts('10.0.0.0/8[udp]'))).toBeUndefined();
    const n = narrow([ts('0.0.0.0/0')], [ts('10.1.0.0/24'), ts('10.1.0.0/25'), ts('10.9.0.0/16')]);
    expect(n.map(formatTrafficSelector)).toEqual(['10.1.0.0/24', '10.9.0.0/16']);
  });
  it('splits ranges into prefixes', () => {
    const r = { ...ts('10.0.0.0/32'), end: ts('10.0.0.6').start };
    expect(rangeToPrefixes(r)).toEqual(['10.0.0.0/30', '10.0.0.4/31', '10.0.0.6/32']);
    expect(rangeToPrefixes(ts('::/0'))).toEqual(['::/0']);
  });
  it('wire form round-trips and rejects inverted ranges', () => {
    const s = ts('fd00:1::/48[udp/4500]');
    expect(fromWireSelector(toWireSelector(s))).toEqual(s);
    const w = toWireSelector(ts('10.0.0.0/24'));
    expect(fromWireSelector({ ...w, startAddr: w.endAddr, endAddr: w.startAddr })).toBeUndefined();
    expect(fromWireSelector({ ...w, tsType: 9 })).toBeUndefined();
  });
});

describe('natSubstitute (transport mode through a NAT)', () => {
  it('replaces single-host selectors of the family by the IKE address, keeping ports and protocol', () => {
    const r = natSubstitute([ts('10.0.0.1[tcp/443]'), ts('10.0.1.0/24'), ts('2001:db8::1')], '203.0.113.9');
    expect(r.ts.map(formatTrafficSelector)).toEqual(['203.0.113.9/32[tcp/443]', '10.0.1.0/24', '2001:db8::1/128']);
    expect(r.original).toBe('10.0.0.1');
  });

  it('leaves a selector that already is the IKE address alone, and says nothing was replaced', () => {
    const r = natSubstitute([ts('203.0.113.9')], '203.0.113.9');
    expect(r.ts.map(formatTrafficSelector)).toEqual(['203.0.113.9/32']);
    expect(r.original).toBeUndefined();
  });
});
