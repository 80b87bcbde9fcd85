/**
 * Decoders of the payload bodies (everything after the 4-byte generic payload
 * header), one per payload type. Each reads from a Reader bounded to exactly
 * the payload body and must consume all of it; every failure is a
 * MalformedMessageError naming the payload and the absolute offset.
 */
import type { Reader } from '../cursor.js';
import { PAYLOAD, PROTOCOL, TRANSFORM_ATTR, TS_TYPE } from './constants.js';
import type {
  CpAttribute,
  KnownPayload,
  KnownPayloadType,
  Proposal,
  TrafficSelector,
  Transform,
  TransformAttribute,
} from './types.js';

export const PROPOSAL_MORE = 2;
export const TRANSFORM_MORE = 3;
export const NONCE_MIN = 16;
export const NONCE_MAX = 256;
export const TS_IPV4_LENGTH = 16;
export const TS_IPV6_LENGTH = 40;
const AF_BIT = 0x8000;

function decodeAttributes(r: Reader): TransformAttribute[] {
  const attrs: TransformAttribute[] = [];
  while (!r.atEnd) {
    const at = r.offset;
    const word = r.u16('attribute type');
    const type = word & 0x7fff;
    if (word & AF_BIT) {
      attrs.push({ type, value: r.u16('attribute value'), tv: true });
    } else {
      if (type === TRANSFORM_ATTR.KEY_LENGTH) r.fail('Key Length attribute must use the TV format', at);
      const len = r.u16('attribute length');
      attrs.push({ type, value: r.bytes(len, 'attribute value'), tv: false });
    }
  }
  return attrs;
}

function decodeTransforms(r: Reader, count: number, where: () => string): Transform[] {
  const transforms: Transform[] = [];
  let marker = TRANSFORM_MORE;
  while (!r.atEnd) {
    const at = r.offset;
    if (marker === 0) r.fail('transform after the one marked last', at);
    marker = r.u8('transform last/more marker');
    if (marker !== 0 && marker !== TRANSFORM_MORE) r.fail(`bad transform last/more marker ${marker}`, at);
    r.skip(1, 'transform reserved');
    const len = r.u16('transform length');
    if (len < 8) r.fail(`transform length ${len} < 8`, at);
    const n = transforms.length + 1;
    const t = r.sub(len - 4, () => `${where()}/Transform#${n}`);
    const type = t.u8('transform type');
    t.skip(1, 'transform reserved');
    const id = t.u16('transform id');
    transforms.push({ type, id, attributes: decodeAttributes(t) });
  }
  if (marker !== 0) r.fail('last transform not marked last');
  if (transforms.length !== count) r.fail(`proposal announces ${count} transform(s), carries ${transforms.length}`);
  return transforms;
}

function decodeSa(r: Reader): Proposal[] {
  const proposals: Proposal[] = [];
  let marker = PROPOSAL_MORE;
  while (!r.atEnd) {
    const at = r.offset;
    if (marker === 0) r.fail('proposal after the one marked last', at);
    marker = r.u8('proposal last/more marker');
    if (marker !== 0 && marker !== PROPOSAL_MORE) r.fail(`bad proposal last/more marker ${marker}`, at);
    r.skip(1, 'proposal reserved');
    const len = r.u16('proposal length');
    if (len < 8) r.fail(`proposal length ${len} < 8`, at);
    const n = proposals.length + 1;
    const where = () => `${r.where ?? 'SA'}/Proposal#${n}`;
    const p = r.sub(len - 4, where);
    const num = p.u8('proposal number');
    const prev = proposals[proposals.length - 1];
    if (num === 0) p.fail('proposal number 0', at + 4);
    if (prev && num !== prev.num + 1) p.fail(`proposal number ${num} does not follow ${prev.num}`, at + 4);
    const protocolId = p.u8('protocol id');
    const spiSize = p.u8('SPI size');
    checkSpiSize(p, protocolId, spiSize, [0, 8], [4]);
    const count = p.u8('number of transforms');
    const spi = p.bytes(spiSize, 'SPI');
    proposals.push({ num, protocolId, spi, transforms: decodeTransforms(p, count, where) });
  }
  if (proposals.length === 0) r.fail('SA payload without proposals');
  if (marker !== 0) r.fail('last proposal not marked last');
  if (proposals.length > 1 && proposals[0]?.num !== 1) r.fail('first of several proposals is not number 1');
  return proposals;
}

function checkSpiSize(r: Reader, protocolId: number, spiSize: number, ike: number[], esp: number[]): void {
  const allowed =
    protocolId === PROTOCOL.IKE ? ike : protocolId === PROTOCOL.ESP || protocolId === PROTOCOL.AH ? esp : undefined;
  if (allowed && !allowed.includes(spiSize)) {
    r.fail(`SPI size ${spiSize} invalid for protocol ${protocolId}`, r.offset - 1);
  }
}

function decodeSelectors(r: Reader): TrafficSelector[] {
  const count = r.u8('number of TSs');
  r.skip(3, 'TS reserved');
  const selectors: TrafficSelector[] = [];
  while (!r.atEnd) {
    const at = r.offset;
    const tsType = r.u8('TS type');
    const ipProto = r.u8('IP protocol');
    const len = r.u16('selector length');
    if (tsType === TS_TYPE.IPV4_ADDR_RANGE || tsType === TS_TYPE.IPV6_ADDR_RANGE) {
      const want = tsType === TS_TYPE.IPV4_ADDR_RANGE ? TS_IPV4_LENGTH : TS_IPV6_LENGTH;
      if (len !== want) r.fail(`selector length ${len}, expected ${want} for TS type ${tsType}`, at);
      const n = selectors.length + 1;
      const s = r.sub(len - 4, () => `${r.where ?? 'TS'}/Selector#${n}`);
      const startPort = s.u16('start port');
      const endPort = s.u16('end port');
      const alen = (len - 8) / 2;
      selectors.push({ tsType, ipProto, startPort, endPort, startAddr: s.bytes(alen), endAddr: s.bytes(alen) });
    } else {
      if (len < 4) r.fail(`selector length ${len} < 4`, at);
      selectors.push({ tsType, ipProto, data: r.bytes(len - 4, 'selector') });
    }
  }
  if (selectors.length !== count) r.fail(`TS payload announces ${count} selector(s), carries ${selectors.length}`);
  return selectors;
}

function decodeCpAttributes(r: Reader): CpAttribute[] {
  const attrs: CpAttribute[] = [];
  while (!r.atEnd) {
    const type = r.u16('CP attribute type') & 0x7fff;
    const len = r.u16('CP attribute length');
    attrs.push({ type, value: r.bytes(len, 'CP attribute value') });
  }
  return attrs;
}

/**
 * Decode the body of a known payload type. `next` is the generic header's
 * next-payload field, used only by SK/SKF (their inner first payload).
 */
export function decodePayloadBody(type: KnownPayloadType, r: Reader, critical: boolean, next: number): KnownPayload {
  const bodyStart = r.offset;
  switch (type) {
    case PAYLOAD.SA:
      return { type, critical, proposals: decodeSa(r) };
    case PAYLOAD.KE: {
      const group = r.u16('KE group');
      r.skip(2, 'KE reserved');
      if (r.atEnd) r.fail('KE payload without key exchange data');
      return { type, critical, group, data: r.rest('KE data') };
    }
    case PAYLOAD.IDi:
    case PAYLOAD.IDr: {
      const idType = r.u8('ID type');
      r.skip(3, 'ID reserved');
      return { type, critical, idType, data: r.rest('ID data') };
    }
    case PAYLOAD.CERT:
    case PAYLOAD.CERTREQ:
      return { type, critical, encoding: r.u8('certificate encoding'), data: r.rest() };
    case PAYLOAD.AUTH: {
      const method = r.u8('auth method');
      r.skip(3, 'AUTH reserved');
      if (r.atEnd) r.fail('AUTH payload without authentication data');
      return { type, critical, method, data: r.rest('AUTH data') };
    }
    case PAYLOAD.NONCE:
      if (r.remaining < NONCE_MIN || r.remaining > NONCE_MAX) {
        r.fail(`nonce of ${r.remaining} bytes outside ${NONCE_MIN}..${NONCE_MAX}`);
      }
      return { type, critical, data: r.rest('nonce') };
    case PAYLOAD.NOTIFY: {
      const protocolId = r.u8('protocol id');
      const spiSize = r.u8('SPI size');
      const notifyType = r.u16('notify type');
      const spi = r.bytes(spiSize, 'notify SPI');
      return { type, critical, protocolId, spi, notifyType, data: r.rest('notify data') };
    }
    case PAYLOAD.DELETE: {
      const protocolId = r.u8('protocol id');
      const spiSize = r.u8('SPI size');
      checkSpiSize(r, protocolId, spiSize, [0], [4]);
      const count = r.u16('number of SPIs');
      if (protocolId === PROTOCOL.IKE && count !== 0) r.fail(`IKE SA delete with ${count} SPI(s)`);
      if (spiSize * count !== r.remaining) {
        r.fail(`${count} SPI(s) of ${spiSize} bytes do not fill the ${r.remaining} byte(s) left`);
      }
      const spis: Buffer[] = [];
      for (let i = 0; i < count; i++) spis.push(r.bytes(spiSize, 'SPI'));
      return { type, critical, protocolId, spiSize, spis };
    }
    case PAYLOAD.VENDOR:
      return { type, critical, data: r.rest('vendor id') };
    case PAYLOAD.TSi:
    case PAYLOAD.TSr:
      return { type, critical, selectors: decodeSelectors(r) };
    case PAYLOAD.SK:
      return { type, critical, innerFirstPayload: next, body: r.rest('SK body') };
    case PAYLOAD.SKF: {
      const fragmentNumber = r.u16('fragment number');
      const totalFragments = r.u16('total fragments');
      if (totalFragments === 0) r.fail('total fragments 0', bodyStart + 2);
      if (fragmentNumber === 0 || fragmentNumber > totalFragments) {
        r.fail(`fragment number ${fragmentNumber} outside 1..${totalFragments}`, bodyStart);
      }
      return { type, critical, fragmentNumber, totalFragments, innerFirstPayload: next, body: r.rest('SKF body') };
    }
    case PAYLOAD.CP: {
      const cfgType = r.u8('CFG type');
      r.skip(3, 'CP reserved');
      return { type, critical, cfgType, attributes: decodeCpAttributes(r) };
    }
    case PAYLOAD.EAP: {
      if (r.remaining < 4) r.fail(`EAP message of ${r.remaining} bytes < 4`);
      const data = r.rest('EAP message');
      const eapLen = data.readUInt16BE(2);
      if (eapLen !== data.length) r.fail(`EAP length ${eapLen} != payload data length ${data.length}`, bodyStart + 2);
      return { type, critical, data };
    }
  }
}
