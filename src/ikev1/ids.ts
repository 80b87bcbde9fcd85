/**
 * Phase 1 identities and phase 2 client IDs (IDci/IDcr, RFC 2409 5.5) to and
 * from the engine's identities and traffic selectors.
 */
import { type Identity, identityFromWire, identityToWire } from '../sa/identity.js';
import { rangeToPrefixes, type TrafficSelector } from '../sa/traffic-selector.js';
import { bigIntToBytes, bytesToBigInt } from '../util/ip.js';
import { type IdV1Payload, V1IdType, V1PayloadType, v1IdAddressRange } from '../wire/ikev1/index.js';

/** Phase 1 ID payload for our identity (protocol/port 0: any). */
export function identityPayload(id: Identity): IdV1Payload {
  const w = identityToWire(id);
  return { type: V1PayloadType.ID, idType: w.idType, protocolId: 0, port: 0, data: w.data };
}

export function identityOf(p: IdV1Payload): Identity | undefined {
  try {
    return identityFromWire(p.idType, p.data);
  } catch {
    return undefined;
  }
}

/** The ID payload body (ID type, protocol, port, data), what HASH_I/HASH_R cover. */
export function idBody(p: IdV1Payload): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt8(p.idType, 0);
  head.writeUInt8(p.protocolId, 1);
  head.writeUInt16BE(p.port, 2);
  return Buffer.concat([head, p.data]);
}

/** Client ID for a selector: a host address, a subnet, or a range. One port or any. */
export function selectorId(ts: TrafficSelector): IdV1Payload {
  const n = ts.family === 4 ? 4 : 16;
  const start = bigIntToBytes(ts.start, n);
  const port = ts.startPort === ts.endPort ? ts.startPort : 0;
  const base = { type: V1PayloadType.ID, protocolId: ts.proto, port } as const;
  if (ts.start === ts.end) {
    return { ...base, idType: ts.family === 4 ? V1IdType.IPV4_ADDR : V1IdType.IPV6_ADDR, data: start };
  }
  const prefixes = rangeToPrefixes(ts);
  if (prefixes.length === 1) {
    const len = Number((prefixes[0] as string).split('/')[1]);
    const bits = n * 8;
    const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
    return {
      ...base,
      idType: ts.family === 4 ? V1IdType.IPV4_ADDR_SUBNET : V1IdType.IPV6_ADDR_SUBNET,
      data: Buffer.concat([start, bigIntToBytes(mask, n)]),
    };
  }
  return {
    ...base,
    idType: ts.family === 4 ? V1IdType.IPV4_ADDR_RANGE : V1IdType.IPV6_ADDR_RANGE,
    data: Buffer.concat([start, bigIntToBytes(ts.end, n)]),
  };
}

/** Selector of a client ID; undefined for non-address IDs or malformed data. */
export function idSelector(p: IdV1Payload): TrafficSelector | undefined {
  let range: { start: Buffer; end: Buffer } | undefined;
  try {
    range = v1IdAddressRange(p.idType, p.data);
  } catch {
    return undefined;
  }
  if (!range) return undefined;
  return {
    family: range.start.length === 4 ? 4 : 6,
    proto: p.protocolId,
    startPort: p.port,
    endPort: p.port === 0 ? 65535 : p.port,
    start: bytesToBigInt(range.start),
    end: bytesToBigInt(range.end),
  };
}
