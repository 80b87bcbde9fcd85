import { describe, expect, it } from 'vitest';
import { formatAddr, parseAddr } from '../../src/kernel/xfrm/addr.js';
import { NLM_F, XFRM_MSG, XFRMA } from '../../src/kernel/xfrm/constants.js';
import { kernelToSa, policyToKernel, saToKernel } from '../../src/kernel/xfrm/convert.js';
import { toEvent } from '../../src/kernel/xfrm/kernel.js';
import { decodeDatagram, encodeMessage, MESSAGES, type XfrmKind } from '../../src/kernel/xfrm/messages.js';
import { DEFAULT_OWNERSHIP } from '../../src/kernel/xfrm/ownership.js';
import * as S from '../../src/kernel/xfrm/structs.js';
import { MalformedMessageError } from '../../src/wire/errors.js';

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REQID = DEFAULT_OWNERSHIP.reqidMin + 3;
const a4 = (s: string) => parseAddr(s).bytes;

describe('struct layouts', () => {
  it('match the x86_64 sizes of linux/xfrm.h', () => {
    const sizes: [S.StructDef, number][] = [
      [S.SELECTOR, 56],
      [S.ID, 24],
      [S.LIFETIME_CFG, 64],
      [S.LIFETIME_CUR, 32],
      [S.STATS, 12],
      [S.USERSA_INFO, 224],
      [S.USERSA_ID, 24],
      [S.USERSPI_INFO, 232],
      [S.USERPOLICY_INFO, 168],
      [S.USERPOLICY_ID, 64],
      [S.USER_TMPL, 64],
      [S.USER_ACQUIRE, 280],
      [S.USER_EXPIRE, 232],
      [S.USER_POLEXPIRE, 176],
      [S.USER_MAPPING, 64],
      [S.MARK, 8],
      [S.ENCAP_TMPL, 24],
    ];
    for (const [d, size] of sizes) {
      expect(d.size, d.name).toBe(size);
      // every field lies inside the struct
      for (const [name, off, t] of d.fields) {
        const w =
          typeof t === 'object' ? t.size : { u8: 1, u16: 2, be16: 2, u32: 4, i32: 4, be32: 4, u64: 8, addr: 16 }[t];
        expect(off + w, `${d.name}.${name}`).toBeLessThanOrEqual(size);
      }
    }
  });
});

describe('addresses', () => {
  it('round-trip IPv4 and IPv6 text', () => {
    for (const s of [
      '10.1.2.3',
      '::',
      '::1',
      'fd00::1',
      '2001:db8:0:1:0:0:0:1',
      'fe80::1:2',
      '1:2:3:4:5:6:7:8',
      '::ffff:10.0.0.1',
    ]) {
      const r = parseAddr(s);
      const back = formatAddr(r.bytes, r.family);
      expect(parseAddr(back).bytes.equals(r.bytes), `${s} -> ${back}`).toBe(true);
    }
    expect(formatAddr(parseAddr('2001:db8:0:1:0:0:0:1').bytes, 6)).toBe('2001:db8:0:1::1');
    expect(() => parseAddr('10.0.0')).toThrow(RangeError);
  });
});

function samples(): Record<XfrmKind, Parameters<typeof encodeMessage>[0]> {
  const sa = saToKernel({
    src: '192.0.2.1',
    dst: '192.0.2.2',
    spi: 0xc0ffee01,
    proto: 'esp',
    mode: 'tunnel',
    reqid: REQID,
    algorithms: {
      crypt: { name: 'cbc(aes)', key: Buffer.alloc(16, 1) },
      auth: { name: 'hmac(sha256)', key: Buffer.alloc(32, 2), truncBits: 128 },
    },
    encap: { sport: 4500, dport: 4500 },
    esn: true,
    replayWindow: 128,
    mark: { value: 5, mask: 0xff },
    lifetime: { softBytes: 100n, hardBytes: 200n, softAddSeconds: 10, hardAddSeconds: 20 },
  });
  const pol = policyToKernel({
    selector: { src: '10.0.0.0/24', dst: '10.1.0.0/24', proto: 6, dstPort: 443 },
    dir: 'out',
    action: 'allow',
    priority: DEFAULT_OWNERSHIP.priorityMin,
    templates: [{ src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', mode: 'tunnel', reqid: REQID }],
  });
  const usersaId = { daddr: a4('192.0.2.2'), spi: 0x1234, family: 2, proto: 50 };
  const polId = { sel: pol.header.sel, index: 99, dir: 1 };
  return {
    NEWSA: { kind: 'NEWSA', header: sa.header, attrs: sa.attrs },
    UPDSA: {
      kind: 'UPDSA',
      header: sa.header,
      attrs: { algAead: { name: 'rfc4106(gcm(aes))', key: Buffer.alloc(20, 3), icvBits: 128 } },
    },
    DELSA: { kind: 'DELSA', header: usersaId, attrs: { srcaddr: a4('192.0.2.1') } },
    GETSA: { kind: 'GETSA', header: usersaId, attrs: { mark: { v: 1, m: 2 } } },
    ALLOCSPI: { kind: 'ALLOCSPI', header: { info: sa.header, min: 0x100, max: 0x200 } },
    NEWPOLICY: { kind: 'NEWPOLICY', header: pol.header, attrs: pol.attrs },
    UPDPOLICY: { kind: 'UPDPOLICY', header: pol.header, attrs: pol.attrs },
    DELPOLICY: { kind: 'DELPOLICY', header: polId, attrs: { policyType: { type: 0, reserved1: 0, reserved2: 0 } } },
    GETPOLICY: { kind: 'GETPOLICY', header: polId },
    ACQUIRE: {
      kind: 'ACQUIRE',
      header: {
        id: { daddr: a4('192.0.2.2'), proto: 50 },
        saddr: a4('192.0.2.1'),
        sel: pol.header.sel,
        policy: { ...pol.header, index: 17 },
        seq: 3,
      },
      attrs: { tmpl: pol.attrs.tmpl! },
    },
    EXPIRE: { kind: 'EXPIRE', header: { state: sa.header, hard: 1 } },
    POLEXPIRE: { kind: 'POLEXPIRE', header: { pol: pol.header, hard: 0 }, attrs: { tmpl: pol.attrs.tmpl! } },
    MAPPING: {
      kind: 'MAPPING',
      header: {
        id: usersaId,
        reqid: REQID,
        oldSaddr: a4('198.51.100.1'),
        newSaddr: a4('198.51.100.2'),
        oldSport: 4500,
        newSport: 4501,
      },
    },
    NEWSPDINFO: {
      kind: 'NEWSPDINFO',
      header: { flags: 0 },
      attrs: { spdIpv4Hthresh: { lbits: 24, rbits: 24 }, spdIpv6Hthresh: { lbits: 64, rbits: 64 } },
    },
    GETSPDINFO: { kind: 'GETSPDINFO', header: { flags: 0 } },
  };
}

describe('message codec', () => {
  const all = samples();
  for (const kind of Object.keys(MESSAGES) as XfrmKind[]) {
    it(`round-trips XFRM_MSG_${kind}`, () => {
      const m = all[kind];
      const buf = encodeMessage({ ...m, seq: 77, pid: 5, flags: NLM_F.REQUEST | NLM_F.ACK });
      expect(buf.readUInt32LE(0)).toBe(buf.length);
      expect(buf.readUInt16LE(4)).toBe(XFRM_MSG[kind]);
      const [d, ...rest] = decodeDatagram(buf);
      expect(rest).toEqual([]);
      expect(d?.kind).toBe(kind);
      if (!d || d.kind === 'ERROR' || d.kind === 'DONE' || d.kind === 'OTHER') throw new Error('bad kind');
      expect(d.nl).toMatchObject({ seq: 77, pid: 5 });
      // Re-encoding the decoded message yields the same bytes.
      const again = encodeMessage({
        kind: d.kind,
        header: d.header as never,
        attrs: d.attrs,
        seq: 77,
        pid: 5,
        flags: d.nl.flags,
      });
      expect(again.equals(buf)).toBe(true);
    });
  }

  it('keeps values: SA algorithms, ESN window, encap, lifetimes', () => {
    const [d] = decodeDatagram(encodeMessage(all.NEWSA));
    if (d?.kind !== 'NEWSA') throw new Error('not NEWSA');
    expect(d.header.id.spi).toBe(0xc0ffee01);
    expect(d.header.lft.hardByteLimit).toBe(200n);
    expect(d.attrs.algAuthTrunc).toMatchObject({ name: 'hmac(sha256)', truncBits: 128 });
    expect(d.attrs.algAuthTrunc?.key.length).toBe(32);
    expect(d.attrs.replayEsnVal).toMatchObject({ bmpLen: 4, replayWindow: 128 });
    expect(d.attrs.encap).toMatchObject({ encapType: 2, encapSport: 4500, encapDport: 4500 });
    expect(d.attrs.mark).toEqual({ v: 5, m: 0xff });
  });

  it('carries a NAT original address (IKEv1 NAT-OA) in the encap template and reads it back', () => {
    const msg = saToKernel({
      src: '198.51.100.7',
      dst: '192.0.2.2',
      spi: 0xc0ffee02,
      proto: 'esp',
      mode: 'transport',
      reqid: REQID,
      algorithms: {
        crypt: { name: 'cbc(aes)', key: Buffer.alloc(16, 1) },
        auth: { name: 'hmac(sha256)', key: Buffer.alloc(32, 2), truncBits: 128 },
      },
      encap: { sport: 40001, dport: 4500, oa: '10.0.0.1' },
    });
    const [d] = decodeDatagram(encodeMessage({ kind: 'NEWSA', flags: NLM_F.REQUEST, seq: 9, ...msg }));
    if (d?.kind !== 'NEWSA') throw new Error('not NEWSA');
    expect(d.attrs.encap?.encapOa.subarray(0, 4)).toEqual(Buffer.from([10, 0, 0, 1]));
    expect(d.attrs.encap?.encapOa.subarray(4).every((b) => b === 0)).toBe(true);
    expect(kernelToSa(d.header, d.attrs)?.encap).toEqual({ sport: 40001, dport: 4500, oa: '10.0.0.1' });
  });

  it('decodes ACQUIRE/EXPIRE/MAPPING into owned KernelEvents, foreign ones into nothing', () => {
    const ev = (k: XfrmKind) => {
      const [d] = decodeDatagram(encodeMessage(all[k]));
      if (!d || d.kind === 'ERROR' || d.kind === 'DONE' || d.kind === 'OTHER') throw new Error('bad');
      return toEvent(d, DEFAULT_OWNERSHIP);
    };
    expect(ev('ACQUIRE')).toEqual({
      type: 'acquire',
      selector: { src: '10.0.0.0/24', dst: '10.1.0.0/24', proto: 6, dstPort: 443 },
      template: { src: '192.0.2.1', dst: '192.0.2.2', proto: 'esp', reqid: REQID },
      policyIndex: 17,
    });
    expect(ev('EXPIRE')).toMatchObject({
      type: 'expire',
      hard: true,
      src: '192.0.2.1',
      reqid: REQID,
      sa: { spi: 0xc0ffee01, dst: '192.0.2.2' },
    });
    expect(ev('MAPPING')).toMatchObject({ type: 'mapping', oldAddr: '198.51.100.1', newPort: 4501 });
    expect(ev('POLEXPIRE')).toMatchObject({ type: 'polexpire', hard: false, policy: { dir: 'out' } });
    // The same EXPIRE for a reqid outside coati's range is not coati's business.
    const foreign = decodeDatagram(encodeMessage(all.EXPIRE))[0];
    if (foreign?.kind !== 'EXPIRE') throw new Error('not EXPIRE');
    foreign.header.state.reqid = 1;
    expect(toEvent(foreign, DEFAULT_OWNERSHIP)).toBeUndefined();
  });

  it('decodes NLMSG_ERROR with extended ack text and NLMSG_DONE', () => {
    const msg = Buffer.from('Invalid algorithm\0');
    const tlv = Buffer.alloc(4 + ((msg.length + 3) & ~3));
    tlv.writeUInt16LE(4 + msg.length, 0);
    tlv.writeUInt16LE(1, 2);
    msg.copy(tlv, 4);
    const body = Buffer.alloc(4 + 16);
    body.writeInt32LE(-38, 0);
    body.writeUInt32LE(300, 4); // echoed request header (capped)
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(16 + body.length + tlv.length, 0);
    hdr.writeUInt16LE(2, 4);
    hdr.writeUInt16LE(NLM_F.CAPPED | NLM_F.ACK_TLVS, 6);
    hdr.writeUInt32LE(9, 8);
    const done = Buffer.alloc(20);
    done.writeUInt32LE(20, 0);
    done.writeUInt16LE(3, 4);
    const ms = decodeDatagram(Buffer.concat([hdr, body, tlv, done]));
    expect(ms[0]).toMatchObject({ kind: 'ERROR', errno: 38, extMsg: 'Invalid algorithm', nl: { seq: 9 } });
    expect(ms[1]).toMatchObject({ kind: 'DONE', errno: 0 });
  });

  it('refuses attributes a message may not carry', () => {
    expect(() =>
      encodeMessage({ kind: 'GETPOLICY', header: {}, attrs: { algCrypt: { name: 'x', key: Buffer.alloc(1) } } }),
    ).toThrow(RangeError);
    expect(XFRMA.ALG_AEAD).toBe(18);
  });
});

describe('decoder robustness (seeded fuzz)', () => {
  const seeds = Object.values(samples()).map((m) => encodeMessage(m));
  it('truncations of every message yield MalformedMessageError, never another exception', () => {
    let typed = 0;
    for (const buf of seeds) {
      for (let n = 0; n < buf.length; n++) {
        const cut = Buffer.from(buf.subarray(0, n));
        if (n >= 16) cut.writeUInt32LE(n, 0); // consistent nlmsg_len: the struct/attrs are what is short
        try {
          decodeDatagram(cut);
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedMessageError);
          typed++;
        }
      }
    }
    expect(typed).toBeGreaterThan(1000);
  });

  it('random mutations and garbage never escape as untyped errors', () => {
    const rnd = prng(0xc0a7);
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 5000; i++) {
      let buf: Buffer;
      if (i % 5 === 0) {
        buf = Buffer.alloc(Math.floor(rnd() * 400));
        for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rnd() * 256);
        if (buf.length >= 8 && rnd() < 0.7) {
          buf.writeUInt32LE(buf.length, 0);
          buf.writeUInt16LE(0x10 + Math.floor(rnd() * 23), 4);
        }
      } else {
        const seed = seeds[Math.floor(rnd() * seeds.length)]!;
        buf = Buffer.from(seed);
        const flips = 1 + Math.floor(rnd() * 8);
        for (let f = 0; f < flips; f++) buf[Math.floor(rnd() * buf.length)] = Math.floor(rnd() * 256);
      }
      try {
        decodeDatagram(buf);
        decoded++;
      } catch (err) {
        if (!(err instanceof MalformedMessageError)) throw err;
        rejected++;
      }
    }
    expect(decoded).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
  });
});
