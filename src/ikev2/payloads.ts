import type { Identity } from '../sa/identity.js';
import { identityToWire } from '../sa/identity.js';
import { fromWireSelector, type TrafficSelector, toWireSelector } from '../sa/traffic-selector.js';
import {
  type AddressRangeSelector,
  isAddressRangeSelector,
  isNotify,
  isTsi,
  isTsr,
  NOTIFY,
  type NotifyPayload,
  PAYLOAD,
  type Payload,
  type Proposal,
} from '../wire/ikev2/index.js';

/** Small constructors and finders so exchange code reads like RFC 7296. */
export const P = {
  notify(notifyType: number, data: Buffer = Buffer.alloc(0), protocolId = 0, spi: Buffer = Buffer.alloc(0)): Payload {
    return { type: PAYLOAD.NOTIFY, critical: false, protocolId, spi, notifyType, data };
  },
  nonce(data: Buffer): Payload {
    return { type: PAYLOAD.NONCE, critical: false, data };
  },
  ke(group: number, data: Buffer): Payload {
    return { type: PAYLOAD.KE, critical: false, group, data };
  },
  sa(proposals: Proposal[]): Payload {
    return { type: PAYLOAD.SA, critical: false, proposals };
  },
  idi(id: Identity): Payload {
    return { type: PAYLOAD.IDi, critical: false, ...identityToWire(id) };
  },
  idr(id: Identity): Payload {
    return { type: PAYLOAD.IDr, critical: false, ...identityToWire(id) };
  },
  auth(method: number, data: Buffer): Payload {
    return { type: PAYLOAD.AUTH, critical: false, method, data };
  },
  tsi(ts: readonly TrafficSelector[]): Payload {
    return { type: PAYLOAD.TSi, critical: false, selectors: ts.map(toWire) };
  },
  tsr(ts: readonly TrafficSelector[]): Payload {
    return { type: PAYLOAD.TSr, critical: false, selectors: ts.map(toWire) };
  },
  deleteIke(): Payload {
    return { type: PAYLOAD.DELETE, critical: false, protocolId: 1, spiSize: 0, spis: [] };
  },
  deleteEsp(spis: number[]): Payload {
    return { type: PAYLOAD.DELETE, critical: false, protocolId: 3, spiSize: 4, spis: spis.map(spiBytes) };
  },
};

function toWire(ts: TrafficSelector): AddressRangeSelector {
  const w = toWireSelector(ts);
  return { ...w, tsType: w.tsType as 7 | 8 };
}

export function spiBytes(spi: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(spi >>> 0);
  return b;
}

/** Selectors of a TS payload we understand (others are ignored, RFC 7296 3.13.1). */
export function selectorsOf(p: Payload | undefined): TrafficSelector[] {
  if (!p || !(isTsi(p) || isTsr(p))) return [];
  const out: TrafficSelector[] = [];
  for (const s of p.selectors) {
    if (!isAddressRangeSelector(s)) continue;
    const ts = fromWireSelector(s);
    if (ts) out.push(ts);
  }
  return out;
}

export function findNotify(payloads: readonly Payload[], type: number): NotifyPayload | undefined {
  return payloads.find((p): p is NotifyPayload => isNotify(p) && p.notifyType === type);
}

export function notifies(payloads: readonly Payload[], type: number): NotifyPayload[] {
  return payloads.filter((p): p is NotifyPayload => isNotify(p) && p.notifyType === type);
}

/** The first error notify (types below 16384), if any. */
export function errorNotify(payloads: readonly Payload[]): NotifyPayload | undefined {
  return payloads.find((p): p is NotifyPayload => isNotify(p) && p.notifyType < 16384);
}

export function first<T extends Payload['type']>(
  payloads: readonly Payload[],
  type: T,
): Extract<Payload, { type: T }> | undefined {
  return payloads.find((p) => p.type === type) as Extract<Payload, { type: T }> | undefined;
}

/** The ID payload body (type, 3 reserved bytes, data) over which MACedIDFor* is computed. */
export function idBody(p: { idType: number; data: Buffer }): Buffer {
  const b = Buffer.alloc(4 + p.data.length);
  b[0] = p.idType;
  p.data.copy(b, 4);
  return b;
}

export const N = NOTIFY;
