/**
 * SA payload body with its Proposal and Transform substructures (RFC 2408
 * 3.4-3.6) under the IPsec DOI (RFC 2407 4.6.1).
 */
import type { Reader, Writer } from '../cursor.js';
import { readV1Attributes, writeV1Attributes } from './attributes.js';
import { V1Doi, V1PayloadType, V1Situation } from './constants.js';
import { V1EncodeError } from './errors.js';
import type { SaV1Payload, V1Proposal, V1Transform } from './types.js';

const SUB_HEADER = 4;
const PROPOSAL_FIXED = 8;
const TRANSFORM_FIXED = 8;

export function readSaBody(r: Reader): SaV1Payload {
  const start = r.offset;
  const doi = r.u32('DOI');
  if (doi !== V1Doi.IPSEC) r.fail(`DOI ${doi} not supported (only IPsec DOI 1)`, start);
  const situation = r.bytes(4, 'situation');
  const sit = situation.readUInt32BE(0);
  if ((sit & ~V1Situation.IDENTITY_ONLY) !== 0) {
    r.fail(`situation 0x${sit.toString(16)} not supported (only SIT_IDENTITY_ONLY)`, start + 4);
  }
  const proposals: V1Proposal[] = [];
  const where = r.where ?? 'SA';
  let next: number = V1PayloadType.PROPOSAL;
  while (next !== V1PayloadType.NONE) {
    const at = r.offset;
    const label = `${where}/Proposal#${proposals.length + 1}`;
    if (r.atEnd) r.fail(proposals.length === 0 ? 'no proposal' : 'proposal chain ends early');
    next = r.u8('proposal next payload');
    if (next !== V1PayloadType.PROPOSAL && next !== V1PayloadType.NONE) {
      r.fail(`proposal next payload ${next} is neither 2 nor 0`, at);
    }
    r.u8('proposal reserved');
    const len = r.u16('proposal length');
    if (len < PROPOSAL_FIXED) r.fail(`proposal length ${len} < ${PROPOSAL_FIXED}`, at + 2);
    proposals.push(readProposal(r.sub(len - SUB_HEADER, label), label));
  }
  r.expectEnd('last proposal');
  return { type: V1PayloadType.SA, doi, situation, proposals };
}

function readProposal(r: Reader, where: string): V1Proposal {
  const at = r.offset;
  const num = r.u8('proposal number');
  const protocolId = r.u8('protocol id');
  const spiSize = r.u8('SPI size');
  const count = r.u8('transform count');
  const spi = r.bytes(spiSize, 'SPI');
  if (count === 0) r.fail('proposal without transforms', at + 3);
  const transforms: V1Transform[] = [];
  for (let i = 0; i < count; i++) {
    const at = r.offset;
    const next = r.u8('transform next payload');
    const expected = i === count - 1 ? V1PayloadType.NONE : V1PayloadType.TRANSFORM;
    if (next !== expected) r.fail(`transform ${i + 1}/${count} next payload ${next}, expected ${expected}`, at);
    r.u8('transform reserved');
    const len = r.u16('transform length');
    if (len < TRANSFORM_FIXED) r.fail(`transform length ${len} < ${TRANSFORM_FIXED}`, at + 2);
    const t = r.sub(len - SUB_HEADER, `${where}/Transform#${i + 1}`);
    const tnum = t.u8('transform number');
    const transformId = t.u8('transform id');
    t.u16('transform reserved');
    transforms.push({ num: tnum, transformId, attributes: readV1Attributes(t) });
  }
  r.expectEnd(`transform ${count}`);
  return { num, protocolId, spi, transforms };
}

export function writeSaBody(w: Writer, p: SaV1Payload): void {
  if (p.situation.length !== 4) throw new V1EncodeError('SA situation must be 4 octets (IPsec DOI)');
  if (p.proposals.length === 0) throw new V1EncodeError('SA without proposals');
  w.u32(p.doi).bytes(p.situation);
  p.proposals.forEach((prop, i) => {
    const last = i === p.proposals.length - 1;
    if (prop.spi.length > 0xff) throw new V1EncodeError('proposal SPI longer than 255 octets');
    if (prop.transforms.length === 0 || prop.transforms.length > 0xff) {
      throw new V1EncodeError(`proposal ${prop.num} has ${prop.transforms.length} transforms`);
    }
    const start = w.length;
    w.u8(last ? V1PayloadType.NONE : V1PayloadType.PROPOSAL).u8(0);
    const lenAt = w.reserve(2);
    w.u8(prop.num).u8(prop.protocolId).u8(prop.spi.length).u8(prop.transforms.length).bytes(prop.spi);
    prop.transforms.forEach((t, j) => {
      const tStart = w.length;
      w.u8(j === prop.transforms.length - 1 ? V1PayloadType.NONE : V1PayloadType.TRANSFORM).u8(0);
      const tLenAt = w.reserve(2);
      w.u8(t.num).u8(t.transformId).u16(0);
      writeV1Attributes(w, t.attributes);
      patchLength(w, tLenAt, w.length - tStart);
    });
    patchLength(w, lenAt, w.length - start);
  });
}

function patchLength(w: Writer, at: number, len: number): void {
  if (len > 0xffff) throw new V1EncodeError(`substructure length ${len} exceeds 65535`);
  w.patchU16(at, len);
}
