/**
 * RFC 3706 Dead Peer Detection notifies: R-U-THERE / R-U-THERE-ACK with
 * protocol ISAKMP, SPI = initiator cookie || responder cookie (16 octets)
 * and a 4-octet sequence number as notification data.
 */
import { V1Doi, V1NotifyType, V1PayloadType, V1ProtocolId } from './constants.js';
import { V1EncodeError } from './errors.js';
import type { NotifyV1Payload } from './types.js';

export type DpdKind = 'r-u-there' | 'r-u-there-ack';

export interface DpdNotify {
  kind: DpdKind;
  initiatorCookie: Buffer;
  responderCookie: Buffer;
  sequence: number;
}

export function isDpdNotify(n: NotifyV1Payload): boolean {
  return n.notifyType === V1NotifyType.R_U_THERE || n.notifyType === V1NotifyType.R_U_THERE_ACK;
}

export function encodeDpdNotify(d: DpdNotify): NotifyV1Payload {
  if (d.initiatorCookie.length !== 8 || d.responderCookie.length !== 8) {
    throw new V1EncodeError('DPD cookies must be 8 octets');
  }
  if (!Number.isInteger(d.sequence) || d.sequence < 0 || d.sequence > 0xffffffff) {
    throw new V1EncodeError(`DPD sequence ${d.sequence} out of range`);
  }
  const data = Buffer.alloc(4);
  data.writeUInt32BE(d.sequence);
  return {
    type: V1PayloadType.N,
    doi: V1Doi.IPSEC,
    protocolId: V1ProtocolId.ISAKMP,
    spi: Buffer.concat([d.initiatorCookie, d.responderCookie]),
    notifyType: d.kind === 'r-u-there' ? V1NotifyType.R_U_THERE : V1NotifyType.R_U_THERE_ACK,
    data,
  };
}

/** Interprets a DPD notify; a malformed one is a value, not an exception. */
export function decodeDpdNotify(n: NotifyV1Payload): { ok: true; dpd: DpdNotify } | { ok: false; reason: string } {
  if (!isDpdNotify(n)) return { ok: false, reason: `notify type ${n.notifyType} is not DPD` };
  if (n.protocolId !== V1ProtocolId.ISAKMP) return { ok: false, reason: `DPD protocol id ${n.protocolId}, not ISAKMP` };
  if (n.spi.length !== 16) return { ok: false, reason: `DPD SPI of ${n.spi.length} octets, expected 16` };
  if (n.data.length !== 4) return { ok: false, reason: `DPD data of ${n.data.length} octets, expected 4` };
  return {
    ok: true,
    dpd: {
      kind: n.notifyType === V1NotifyType.R_U_THERE ? 'r-u-there' : 'r-u-there-ack',
      initiatorCookie: Buffer.from(n.spi.subarray(0, 8)),
      responderCookie: Buffer.from(n.spi.subarray(8, 16)),
      sequence: n.data.readUInt32BE(0),
    },
  };
}
