/**
 * Encoders of payload bodies (after the generic header), the mirror of
 * decode-payloads.ts. Inputs the wire format cannot carry raise WireEncodeError.
 */
import type { Writer } from '../cursor.js';
import { PAYLOAD, TS_TYPE } from './constants.js';
import { NONCE_MAX, NONCE_MIN, PROPOSAL_MORE, TRANSFORM_MORE } from './decode-payloads.js';
import { WireEncodeError } from './errors.js';
import {
  isAddressRangeSelector,
  isUnknown,
  type Payload,
  type Proposal,
  type TrafficSelector,
  type Transform,
} from './types.js';

// The messages are built only on failure: these checks run for every field of every message.
function check(cond: boolean, message: string): void {
  if (!cond) throw new WireEncodeError(message);
}

function u8(v: number, what: string): number {
  if (!(Number.isInteger(v) && v >= 0 && v <= 0xff))
    throw new WireEncodeError(`${what} ${v} does not fit in one octet`);
  return v;
}

function u16(v: number, what: string): number {
  if (!(Number.isInteger(v) && v >= 0 && v <= 0xffff))
    throw new WireEncodeError(`${what} ${v} does not fit in two octets`);
  return v;
}

/** Write a u16 length placeholder now, patch it once the structure is written. */
function withLength(w: Writer, lengthAt: number, start: number, what: string): void {
  w.patchU16(lengthAt, u16(w.length - start, `${what} length`));
}

function writeTransform(w: Writer, t: Transform, last: boolean): void {
  const start = w.length;
  w.u8(last ? 0 : TRANSFORM_MORE).u8(0);
  const lenAt = w.reserve(2);
  w.u8(u8(t.type, 'transform type')).u8(0).u16(u16(t.id, 'transform id'));
  for (const a of t.attributes) {
    u16(a.type, 'attribute type');
    if (a.type > 0x7fff) throw new WireEncodeError(`attribute type ${a.type} exceeds 15 bits`);
    if (a.tv) {
      if (typeof a.value !== 'number') throw new WireEncodeError(`TV attribute ${a.type} needs a numeric value`);
      w.u16(0x8000 | a.type).u16(u16(a.value as number, 'attribute value'));
    } else {
      if (!Buffer.isBuffer(a.value)) throw new WireEncodeError(`TLV attribute ${a.type} needs a Buffer value`);
      const v = a.value as Buffer;
      w.u16(a.type).u16(u16(v.length, 'attribute length')).bytes(v);
    }
  }
  withLength(w, lenAt, start, 'transform');
}

function writeProposal(w: Writer, p: Proposal, last: boolean): void {
  const start = w.length;
  w.u8(last ? 0 : PROPOSAL_MORE).u8(0);
  const lenAt = w.reserve(2);
  w.u8(u8(p.num, 'proposal number')).u8(u8(p.protocolId, 'protocol id'));
  w.u8(u8(p.spi.length, 'SPI size')).u8(u8(p.transforms.length, 'transform count'));
  w.bytes(p.spi);
  p.transforms.forEach((t, i) => {
    writeTransform(w, t, i === p.transforms.length - 1);
  });
  withLength(w, lenAt, start, 'proposal');
}

function writeSelector(w: Writer, s: TrafficSelector): void {
  if (isAddressRangeSelector(s)) {
    const alen = s.tsType === TS_TYPE.IPV4_ADDR_RANGE ? 4 : 16;
    if (!(s.startAddr.length === alen && s.endAddr.length === alen))
      throw new WireEncodeError(`TS type ${s.tsType} needs ${alen}-byte addresses`);
    w.u8(s.tsType)
      .u8(u8(s.ipProto, 'IP protocol'))
      .u16(8 + 2 * alen);
    w.u16(u16(s.startPort, 'start port')).u16(u16(s.endPort, 'end port'));
    w.bytes(s.startAddr).bytes(s.endAddr);
  } else {
    const o = s as Extract<TrafficSelector, { data: Buffer }>;
    check(
      o.tsType !== TS_TYPE.IPV4_ADDR_RANGE && o.tsType !== TS_TYPE.IPV6_ADDR_RANGE,
      'address range without addresses',
    );
    w.u8(u8(o.tsType, 'TS type'))
      .u8(u8(o.ipProto, 'TS octet 2'))
      .u16(u16(4 + o.data.length, 'selector length'));
    w.bytes(o.data);
  }
}

/** Write the body of one payload (not its generic header). */
export function writePayloadBody(w: Writer, p: Payload): void {
  if (isUnknown(p)) {
    w.bytes(p.data);
    return;
  }
  switch (p.type) {
    case PAYLOAD.SA:
      check(p.proposals.length > 0, 'SA payload without proposals');
      p.proposals.forEach((pr, i) => {
        writeProposal(w, pr, i === p.proposals.length - 1);
      });
      return;
    case PAYLOAD.KE:
      w.u16(u16(p.group, 'KE group')).u16(0).bytes(p.data);
      return;
    case PAYLOAD.IDi:
    case PAYLOAD.IDr:
      w.u8(u8(p.idType, 'ID type')).zeros(3).bytes(p.data);
      return;
    case PAYLOAD.CERT:
    case PAYLOAD.CERTREQ:
      w.u8(u8(p.encoding, 'certificate encoding')).bytes(p.data);
      return;
    case PAYLOAD.AUTH:
      w.u8(u8(p.method, 'auth method')).zeros(3).bytes(p.data);
      return;
    case PAYLOAD.NONCE:
      if (!(p.data.length >= NONCE_MIN && p.data.length <= NONCE_MAX))
        throw new WireEncodeError(`nonce of ${p.data.length} bytes`);
      w.bytes(p.data);
      return;
    case PAYLOAD.NOTIFY:
      w.u8(u8(p.protocolId, 'protocol id')).u8(u8(p.spi.length, 'SPI size'));
      w.u16(u16(p.notifyType, 'notify type')).bytes(p.spi).bytes(p.data);
      return;
    case PAYLOAD.DELETE:
      w.u8(u8(p.protocolId, 'protocol id')).u8(u8(p.spiSize, 'SPI size')).u16(u16(p.spis.length, 'SPI count'));
      for (const spi of p.spis) {
        if (spi.length !== p.spiSize)
          throw new WireEncodeError(`delete SPI of ${spi.length} bytes, SPI size is ${p.spiSize}`);
        w.bytes(spi);
      }
      return;
    case PAYLOAD.VENDOR:
      w.bytes(p.data);
      return;
    case PAYLOAD.TSi:
    case PAYLOAD.TSr:
      w.u8(u8(p.selectors.length, 'TS count')).zeros(3);
      for (const s of p.selectors) writeSelector(w, s);
      return;
    case PAYLOAD.SK:
      w.bytes(p.body);
      return;
    case PAYLOAD.SKF:
      check(p.fragmentNumber >= 1 && p.fragmentNumber <= p.totalFragments, 'fragment number outside 1..total');
      w.u16(u16(p.fragmentNumber, 'fragment number')).u16(u16(p.totalFragments, 'total fragments')).bytes(p.body);
      return;
    case PAYLOAD.CP:
      w.u8(u8(p.cfgType, 'CFG type')).zeros(3);
      for (const a of p.attributes) {
        if (a.type > 0x7fff) throw new WireEncodeError(`CP attribute type ${a.type} exceeds 15 bits`);
        w.u16(u16(a.type, 'CP attribute type')).u16(u16(a.value.length, 'CP attribute length')).bytes(a.value);
      }
      return;
    case PAYLOAD.EAP:
      w.bytes(p.data);
      return;
  }
}
