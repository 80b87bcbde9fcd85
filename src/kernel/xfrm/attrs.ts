/**
 * Netlink attributes (struct nlattr: u16 len, u16 type, payload padded to 4)
 * of the XFRM families, declared as a table: attribute type -> key in
 * XfrmAttrs and payload codec. Unknown attributes are kept raw in `unknown`.
 */
import { MalformedMessageError } from '../../wire/errors.js';
import { XFRMA, XFRMA_SPD } from './constants.js';
import type {
  Algo,
  AlgoAead,
  AlgoAuth,
  EncapTmpl,
  LifetimeCur,
  Mark,
  ReplayState,
  ReplayStateEsn,
  SpdHthresh,
  UserpolicyInfo,
  UserpolicyType,
  UsersaInfo,
  UserTmpl,
} from './struct-types.js';
import {
  decodeStruct,
  ENCAP_TMPL,
  encodeStruct,
  LIFETIME_CUR,
  MARK,
  REPLAY_STATE,
  REPLAY_STATE_ESN,
  SPD_HTHRESH,
  type StructDef,
  USER_TMPL,
  USERPOLICY_INFO,
  USERPOLICY_TYPE,
  USERSA_INFO,
} from './structs.js';

export interface XfrmAttrs {
  algAuth?: Algo;
  algCrypt?: Algo;
  algAead?: AlgoAead;
  algAuthTrunc?: AlgoAuth;
  encap?: EncapTmpl;
  tmpl?: UserTmpl[];
  sa?: UsersaInfo;
  policy?: UserpolicyInfo;
  ltimeVal?: LifetimeCur;
  replayVal?: ReplayState;
  replayEsnVal?: ReplayStateEsn;
  srcaddr?: Buffer;
  lastused?: bigint;
  policyType?: UserpolicyType;
  mark?: Mark;
  saExtraFlags?: number;
  proto?: number;
  ifId?: number;
  spdIpv4Hthresh?: SpdHthresh;
  spdIpv6Hthresh?: SpdHthresh;
  /** Attributes without a codec here, by type: kept so nothing is silently lost. */
  unknown?: { type: number; data: Buffer }[];
}
type AttrKey = Exclude<keyof XfrmAttrs, 'unknown'>;

interface AttrCodec {
  key: AttrKey;
  decode(p: Buffer): unknown;
  encode(v: never): Buffer;
}

const ALG_NAME_LEN = 64;

function algName(p: Buffer, what: string): string {
  if (p.length < ALG_NAME_LEN + 4) throw new MalformedMessageError(`truncated ${what}: ${p.length} bytes`, 0, what);
  const nul = p.indexOf(0);
  return p.toString('latin1', 0, nul >= 0 && nul < ALG_NAME_LEN ? nul : ALG_NAME_LEN);
}
function algKey(p: Buffer, at: number, what: string): Buffer {
  const bits = p.readUInt32LE(ALG_NAME_LEN);
  const bytes = Math.ceil(bits / 8);
  if (p.length < at + bytes) throw new MalformedMessageError(`${what} key of ${bits} bits exceeds attribute`, at, what);
  return Buffer.from(p.subarray(at, at + bytes));
}
function algHead(a: Algo, extra: number[]): Buffer {
  if (Buffer.byteLength(a.name, 'latin1') >= ALG_NAME_LEN) throw new RangeError(`algorithm name too long: ${a.name}`);
  const b = Buffer.alloc(ALG_NAME_LEN + 4 + 4 * extra.length + a.key.length);
  b.write(a.name, 0, 'latin1');
  b.writeUInt32LE(a.key.length * 8, ALG_NAME_LEN);
  extra.forEach((v, i) => {
    b.writeUInt32LE(v, ALG_NAME_LEN + 4 + 4 * i);
  });
  a.key.copy(b, ALG_NAME_LEN + 4 + 4 * extra.length);
  return b;
}

const algo: (key: AttrKey) => AttrCodec = (key) => ({
  key,
  decode: (p) => ({ name: algName(p, key), key: algKey(p, ALG_NAME_LEN + 4, key) }),
  encode: (v: Algo) => algHead(v, []),
});
const algo3: (key: AttrKey, third: 'truncBits' | 'icvBits') => AttrCodec = (key, third) => ({
  key,
  decode: (p) => {
    const name = algName(p, key);
    if (p.length < ALG_NAME_LEN + 8) throw new MalformedMessageError(`truncated ${key}`, 0, key);
    return { name, [third]: p.readUInt32LE(ALG_NAME_LEN + 4), key: algKey(p, ALG_NAME_LEN + 8, key) };
  },
  encode: (v: AlgoAuth & AlgoAead) => algHead(v, [v[third]]),
});
const struct: (key: AttrKey, d: StructDef) => AttrCodec = (key, d) => ({
  key,
  decode: (p) => decodeStruct(d, p),
  encode: (v: object) => encodeStruct(d, v),
});
const u32: (key: AttrKey) => AttrCodec = (key) => ({
  key,
  decode: (p) => {
    if (p.length < 4) throw new MalformedMessageError(`truncated u32 attribute ${key}`, 0, key);
    return p.readUInt32LE(0);
  },
  encode: (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  },
});

const XFRMA_CODECS = new Map<number, AttrCodec>([
  [XFRMA.ALG_AUTH, algo('algAuth')],
  [XFRMA.ALG_CRYPT, algo('algCrypt')],
  [XFRMA.ALG_AEAD, algo3('algAead', 'icvBits')],
  [XFRMA.ALG_AUTH_TRUNC, algo3('algAuthTrunc', 'truncBits')],
  [XFRMA.ENCAP, struct('encap', ENCAP_TMPL)],
  [
    XFRMA.TMPL,
    {
      key: 'tmpl',
      decode: (p) => {
        if (p.length % USER_TMPL.size !== 0) {
          throw new MalformedMessageError(`XFRMA_TMPL length ${p.length} not a multiple of 64`, 0, 'tmpl');
        }
        const out: UserTmpl[] = [];
        for (let o = 0; o < p.length; o += USER_TMPL.size) out.push(decodeStruct(USER_TMPL, p, o));
        return out;
      },
      encode: (v: UserTmpl[]) => {
        const b = Buffer.alloc(v.length * USER_TMPL.size);
        v.forEach((t, i) => {
          encodeStruct(USER_TMPL, t, b, i * USER_TMPL.size);
        });
        return b;
      },
    },
  ],
  [XFRMA.SA, struct('sa', USERSA_INFO)],
  [XFRMA.POLICY, struct('policy', USERPOLICY_INFO)],
  [XFRMA.LTIME_VAL, struct('ltimeVal', LIFETIME_CUR)],
  [XFRMA.REPLAY_VAL, struct('replayVal', REPLAY_STATE)],
  [
    XFRMA.REPLAY_ESN_VAL,
    {
      key: 'replayEsnVal',
      decode: (p) => {
        const head = decodeStruct<Omit<ReplayStateEsn, 'bmp'>>(REPLAY_STATE_ESN, p);
        if (head.bmpLen > 4096 / 32 || p.length < REPLAY_STATE_ESN.size + 4 * head.bmpLen) {
          throw new MalformedMessageError(`bad ESN bitmap length ${head.bmpLen}`, 0, 'replayEsnVal');
        }
        const bmp: number[] = [];
        for (let i = 0; i < head.bmpLen; i++) bmp.push(p.readUInt32LE(REPLAY_STATE_ESN.size + 4 * i));
        return { ...head, bmp };
      },
      encode: (v: ReplayStateEsn) => {
        const b = Buffer.alloc(REPLAY_STATE_ESN.size + 4 * v.bmpLen);
        encodeStruct(REPLAY_STATE_ESN, v, b);
        for (let i = 0; i < v.bmpLen; i++) b.writeUInt32LE(v.bmp[i] ?? 0, REPLAY_STATE_ESN.size + 4 * i);
        return b;
      },
    },
  ],
  [
    XFRMA.SRCADDR,
    {
      key: 'srcaddr',
      decode: (p) => {
        if (p.length < 16) throw new MalformedMessageError('truncated XFRMA_SRCADDR', 0, 'srcaddr');
        return Buffer.from(p.subarray(0, 16));
      },
      encode: (v: Buffer) => Buffer.from(v.subarray(0, 16)),
    },
  ],
  [
    XFRMA.LASTUSED,
    {
      key: 'lastused',
      decode: (p) => {
        if (p.length < 8) throw new MalformedMessageError('truncated XFRMA_LASTUSED', 0, 'lastused');
        return p.readBigUInt64LE(0);
      },
      encode: (v: bigint) => {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(v);
        return b;
      },
    },
  ],
  [XFRMA.POLICY_TYPE, struct('policyType', USERPOLICY_TYPE)],
  [XFRMA.MARK, struct('mark', MARK)],
  [XFRMA.SA_EXTRA_FLAGS, u32('saExtraFlags')],
  [
    XFRMA.PROTO,
    {
      key: 'proto',
      decode: (p) => {
        if (p.length < 1) throw new MalformedMessageError('truncated XFRMA_PROTO', 0, 'proto');
        return p.readUInt8(0);
      },
      encode: (v: number) => Buffer.from([v]),
    },
  ],
  [XFRMA.IF_ID, u32('ifId')],
]);

const SPD_CODECS = new Map<number, AttrCodec>([
  [XFRMA_SPD.IPV4_HTHRESH, struct('spdIpv4Hthresh', SPD_HTHRESH)],
  [XFRMA_SPD.IPV6_HTHRESH, struct('spdIpv6Hthresh', SPD_HTHRESH)],
]);

export type AttrSpace = 'xfrma' | 'spd';
const SPACES: Record<AttrSpace, Map<number, AttrCodec>> = { xfrma: XFRMA_CODECS, spd: SPD_CODECS };
const TYPE_OF_KEY: Record<AttrSpace, Map<AttrKey, number>> = {
  xfrma: new Map([...XFRMA_CODECS].map(([t, c]) => [c.key, t])),
  spd: new Map([...SPD_CODECS].map(([t, c]) => [c.key, t])),
};

const NLA_TYPE_MASK = 0x3fff;
export const align4 = (n: number): number => (n + 3) & ~3;

/** Decodes the attributes in buf[off..end); each attribute's payload error is reported with its offset. */
export function decodeAttrs(space: AttrSpace, buf: Buffer, off: number, end: number): XfrmAttrs {
  const out: XfrmAttrs = {};
  const codecs = SPACES[space];
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > end) {
      throw new MalformedMessageError(`attribute type ${type} length ${len} overruns message`, off, 'nlattr');
    }
    const payload = buf.subarray(off + 4, off + len);
    const codec = codecs.get(type);
    if (codec) {
      try {
        (out as Record<string, unknown>)[codec.key] = codec.decode(payload);
      } catch (err) {
        if (err instanceof MalformedMessageError) {
          throw new MalformedMessageError(err.message, off + 4 + Math.max(0, err.offset), `attr ${codec.key}`);
        }
        throw err;
      }
    } else {
      out.unknown ??= [];
      out.unknown.push({ type, data: Buffer.from(payload) });
    }
    off += align4(len);
  }
  if (off < end) {
    throw new MalformedMessageError(`${end - off} trailing byte(s) after attributes`, off, 'nlattr');
  }
  return out;
}

/** Encodes the attributes present in `attrs`, in table order, as one buffer. */
export function encodeAttrs(space: AttrSpace, attrs: XfrmAttrs): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined) continue;
    if (key === 'unknown') {
      for (const u of value as { type: number; data: Buffer }[]) parts.push(nla(u.type, u.data));
      continue;
    }
    const type = TYPE_OF_KEY[space].get(key as AttrKey);
    if (type === undefined) throw new RangeError(`attribute ${key} not allowed in ${space} messages`);
    const codec = SPACES[space].get(type)!;
    parts.push(nla(type, codec.encode(value as never)));
  }
  return Buffer.concat(parts);
}

function nla(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(align4(4 + payload.length));
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
