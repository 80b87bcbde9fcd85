/**
 * Payload bodies (everything after the 4-octet generic header) for every
 * ISAKMP payload type this layer understands.
 */
import type { Reader, Writer } from '../cursor.js';
import { V1PayloadType as T, V1IdType } from './constants.js';
import { V1EncodeError, V1InvalidPayloadTypeError } from './errors.js';
import { readSaBody, writeSaBody } from './sa.js';
import { isUnknownV1Payload, type UnknownV1PayloadType, type V1Payload } from './types.js';

/** Types kept opaque as UnknownV1Payload: 14 and the private-use range minus the draft NAT types. */
export function isOpaqueV1PayloadType(type: number): type is UnknownV1PayloadType {
  return type === T.ATTRIBUTE || (type >= 128 && type <= 255 && type !== T.NAT_D_DRAFT && type !== T.NAT_OA_DRAFT);
}

/** Reads one payload body; `r` spans exactly the body. `headerAt` is the generic header offset. */
export function readV1PayloadBody(type: number, r: Reader, headerAt: number): V1Payload {
  let p: V1Payload;
  switch (type) {
    case T.SA:
      p = readSaBody(r);
      break;
    case T.KE:
    case T.HASH:
    case T.SIG:
    case T.NONCE:
    case T.VID:
      p = { type, data: r.rest('data') };
      break;
    case T.ID:
      p = { type, idType: r.u8('ID type'), protocolId: r.u8('protocol id'), port: r.u16('port'), data: r.rest() };
      break;
    case T.CERT:
    case T.CR:
      p = { type, encoding: r.u8('encoding'), data: r.rest() };
      break;
    case T.N: {
      const doi = r.u32('DOI');
      const protocolId = r.u8('protocol id');
      const spiSize = r.u8('SPI size');
      const notifyType = r.u16('notify type');
      const spi = r.bytes(spiSize, 'SPI');
      p = { type, doi, protocolId, spi, notifyType, data: r.rest() };
      break;
    }
    case T.D: {
      const doi = r.u32('DOI');
      const protocolId = r.u8('protocol id');
      const spiSize = r.u8('SPI size');
      const countAt = r.offset;
      const count = r.u16('SPI count');
      if (spiSize === 0 && count !== 0) r.fail(`${count} SPI(s) of size 0`, countAt);
      if (count * spiSize !== r.remaining) {
        r.fail(`${count} SPI(s) of ${spiSize} octets need ${count * spiSize}, body has ${r.remaining}`, countAt);
      }
      const spis: Buffer[] = [];
      for (let i = 0; i < count; i++) spis.push(r.bytes(spiSize, 'SPI'));
      p = { type, doi, protocolId, spiSize, spis };
      break;
    }
    case T.NAT_D:
    case T.NAT_D_DRAFT:
      if (r.atEnd) r.fail('empty NAT-D hash');
      p = { type, hash: r.rest() };
      break;
    case T.NAT_OA:
    case T.NAT_OA_DRAFT: {
      const at = r.offset;
      const idType = r.u8('ID type');
      r.skip(3, 'reserved');
      const len = idType === V1IdType.IPV4_ADDR ? 4 : idType === V1IdType.IPV6_ADDR ? 16 : -1;
      if (len < 0) r.fail(`NAT-OA ID type ${idType} is neither IPV4_ADDR nor IPV6_ADDR`, at);
      p = { type, idType, addr: r.bytes(len, 'address') };
      break;
    }
    default:
      if (!isOpaqueV1PayloadType(type)) throw new V1InvalidPayloadTypeError(type, headerAt, r.where);
      p = { type, unknown: true, body: r.rest() };
  }
  r.expectEnd(r.where ?? 'payload');
  return p;
}

/** Writes one payload body (no generic header). */
export function writeV1PayloadBody(w: Writer, p: V1Payload): void {
  if (isUnknownV1Payload(p)) {
    if (!isOpaqueV1PayloadType(p.type)) throw new V1EncodeError(`payload type ${p.type} cannot be encoded opaquely`);
    w.bytes(p.body);
    return;
  }
  switch (p.type) {
    case T.SA:
      writeSaBody(w, p);
      return;
    case T.KE:
    case T.HASH:
    case T.SIG:
    case T.NONCE:
    case T.VID:
      w.bytes(p.data);
      return;
    case T.ID:
      w.u8(p.idType).u8(p.protocolId).u16(p.port).bytes(p.data);
      return;
    case T.CERT:
    case T.CR:
      w.u8(p.encoding).bytes(p.data);
      return;
    case T.N:
      if (p.spi.length > 0xff) throw new V1EncodeError('notify SPI longer than 255 octets');
      w.u32(p.doi).u8(p.protocolId).u8(p.spi.length).u16(p.notifyType).bytes(p.spi).bytes(p.data);
      return;
    case T.D:
      if (p.spis.length > 0xffff) throw new V1EncodeError('too many SPIs in delete');
      if (p.spiSize === 0 && p.spis.length > 0) throw new V1EncodeError('delete SPI size 0 with SPIs');
      w.u32(p.doi).u8(p.protocolId).u8(p.spiSize).u16(p.spis.length);
      for (const s of p.spis) {
        if (s.length !== p.spiSize) throw new V1EncodeError(`delete SPI of ${s.length} octets, spiSize ${p.spiSize}`);
        w.bytes(s);
      }
      return;
    case T.NAT_D:
    case T.NAT_D_DRAFT:
      if (p.hash.length === 0) throw new V1EncodeError('empty NAT-D hash');
      w.bytes(p.hash);
      return;
    case T.NAT_OA:
    case T.NAT_OA_DRAFT: {
      const want = p.idType === V1IdType.IPV4_ADDR ? 4 : p.idType === V1IdType.IPV6_ADDR ? 16 : -1;
      if (p.addr.length !== want)
        throw new V1EncodeError(`NAT-OA ID type ${p.idType} with ${p.addr.length}-octet address`);
      w.u8(p.idType).zeros(3).bytes(p.addr);
      return;
    }
  }
}
