/**
 * Which payloads each IKEv1 message may carry (RFC 2409 5, 5.5, 5.7;
 * RFC 2408 4.8; RFC 3947; RFC 3706), as one data table and one checker.
 * Steps count messages within the exchange from 1 (initiator's first).
 */
import { V1NotifyType as NT, name, V1PayloadType as P, V1ExchangeType as X } from './constants.js';
import type { V1Payload } from './types.js';

export interface V1PayloadSlot {
  /** Payload types filling this slot (e.g. HASH or SIG for authentication). */
  types: readonly number[];
  min: number;
  max: number;
  /** Absence is also fine (min applies only when present): IDci/IDcr pair, NAT-D. */
  optional?: boolean;
  /** Only status notifies (type >= 16384) may appear in this slot. */
  statusOnly?: boolean;
}

export interface V1MessageRule {
  exchangeType: number;
  step: number;
  /** Whether the message travels encrypted; 'either' for Aggressive Mode 3. */
  encrypted: boolean | 'either';
  /** HASH must be the first payload (Quick Mode, protected Informational). */
  hashFirst?: boolean;
  /** At least one of these types must appear (Informational: N or D). */
  requireOneOf?: readonly number[];
  /** Every payload must fall into exactly one slot; anything else is refused. */
  slots: readonly V1PayloadSlot[];
}

const MANY = Number.POSITIVE_INFINITY;
const one = (...types: number[]): V1PayloadSlot => ({ types, min: 1, max: 1 });
const any = (...types: number[]): V1PayloadSlot => ({ types, min: 0, max: MANY });
const AUTH = one(P.HASH, P.SIG);
const VIDS = any(P.VID);
const CRS = any(P.CR);
const CERTS = any(P.CERT);
/** RFC 3947 3.2: when present, at least two NAT-D (remote, then one or more local). */
const NATD: V1PayloadSlot = { types: [P.NAT_D, P.NAT_D_DRAFT], min: 2, max: MANY, optional: true };
const STATUS: V1PayloadSlot = { types: [P.N], min: 0, max: MANY, statusOnly: true };
const QM_BODY: readonly V1PayloadSlot[] = [
  one(P.HASH),
  one(P.SA),
  one(P.NONCE),
  { types: [P.KE], min: 0, max: 1 },
  { types: [P.ID], min: 2, max: 2, optional: true },
  { types: [P.NAT_OA, P.NAT_OA_DRAFT], min: 0, max: 2 },
  STATUS,
];

export const V1_MESSAGE_RULES: readonly V1MessageRule[] = [
  { exchangeType: X.IDENTITY_PROTECTION, step: 1, encrypted: false, slots: [one(P.SA), VIDS] },
  { exchangeType: X.IDENTITY_PROTECTION, step: 2, encrypted: false, slots: [one(P.SA), VIDS] },
  { exchangeType: X.IDENTITY_PROTECTION, step: 3, encrypted: false, slots: [one(P.KE), one(P.NONCE), NATD, CRS, VIDS] },
  { exchangeType: X.IDENTITY_PROTECTION, step: 4, encrypted: false, slots: [one(P.KE), one(P.NONCE), NATD, CRS, VIDS] },
  { exchangeType: X.IDENTITY_PROTECTION, step: 5, encrypted: true, slots: [one(P.ID), AUTH, CERTS, CRS, STATUS, VIDS] },
  { exchangeType: X.IDENTITY_PROTECTION, step: 6, encrypted: true, slots: [one(P.ID), AUTH, CERTS, STATUS, VIDS] },
  {
    exchangeType: X.AGGRESSIVE,
    step: 1,
    encrypted: false,
    slots: [one(P.SA), one(P.KE), one(P.NONCE), one(P.ID), CRS, VIDS],
  },
  {
    exchangeType: X.AGGRESSIVE,
    step: 2,
    encrypted: false,
    slots: [one(P.SA), one(P.KE), one(P.NONCE), one(P.ID), AUTH, CERTS, CRS, NATD, VIDS],
  },
  { exchangeType: X.AGGRESSIVE, step: 3, encrypted: 'either', slots: [AUTH, CERTS, NATD, STATUS, VIDS] },
  { exchangeType: X.QUICK_MODE, step: 1, encrypted: true, hashFirst: true, slots: QM_BODY },
  { exchangeType: X.QUICK_MODE, step: 2, encrypted: true, hashFirst: true, slots: QM_BODY },
  { exchangeType: X.QUICK_MODE, step: 3, encrypted: true, hashFirst: true, slots: [one(P.HASH)] },
  {
    exchangeType: X.INFORMATIONAL,
    step: 1,
    encrypted: true,
    hashFirst: true,
    requireOneOf: [P.N, P.D],
    slots: [one(P.HASH), any(P.N), any(P.D)],
  },
  // Before the ISAKMP SA exists (e.g. NO-PROPOSAL-CHOSEN to Main Mode 1) there is no HASH.
  { exchangeType: X.INFORMATIONAL, step: 1, encrypted: false, requireOneOf: [P.N, P.D], slots: [any(P.N), any(P.D)] },
];

export type V1RuleResult = { ok: true } | { ok: false; reason: string; notify: number };

export interface V1RuleOptions {
  /** Whether the message arrived with the E flag; checked when given. */
  encrypted?: boolean;
}

const bad = (notify: number, reason: string): V1RuleResult => ({ ok: false, reason, notify });

/** The rule for a message; for Informational, `encrypted` picks the protected (default) or unprotected form. */
export function findV1Rule(exchangeType: number, step: number, encrypted?: boolean): V1MessageRule | undefined {
  const candidates = V1_MESSAGE_RULES.filter((r) => r.exchangeType === exchangeType && r.step === step);
  if (candidates.length <= 1) return candidates[0];
  return candidates.find((r) => r.encrypted === (encrypted ?? true));
}

function slotOk(slot: V1PayloadSlot, n: number): boolean {
  if (n === 0 && slot.optional) return true;
  return n >= slot.min && n <= slot.max;
}

/** Checks the payload list of one message against the table. */
export function checkV1Rules(
  exchangeType: number,
  step: number,
  payloads: readonly V1Payload[],
  opts: V1RuleOptions = {},
): V1RuleResult {
  const xname = name(X, exchangeType);
  const rule = findV1Rule(exchangeType, step, opts.encrypted);
  if (!rule) {
    const known = V1_MESSAGE_RULES.some((r) => r.exchangeType === exchangeType);
    if (known) return bad(NT.INVALID_EXCHANGE_TYPE, `${xname} has no message ${step}`);
    const named = name(X, exchangeType) !== `UNKNOWN(${exchangeType})`;
    return bad(
      named ? NT.UNSUPPORTED_EXCHANGE_TYPE : NT.INVALID_EXCHANGE_TYPE,
      `exchange ${xname} ${named ? 'not supported' : 'invalid'}`,
    );
  }
  const where = `${xname} message ${step}`;
  if (opts.encrypted !== undefined && rule.encrypted !== 'either' && rule.encrypted !== opts.encrypted) {
    return bad(NT.INVALID_FLAGS, `${where} must ${rule.encrypted ? '' : 'not '}be encrypted`);
  }
  if (rule.hashFirst && payloads[0]?.type !== P.HASH) {
    return bad(NT.INVALID_HASH_INFORMATION, `${where}: HASH must be the first payload`);
  }
  const counts = rule.slots.map(() => 0);
  for (const p of payloads) {
    const i = rule.slots.findIndex((s) => s.types.includes(p.type));
    const slot = rule.slots[i];
    if (!slot) return bad(NT.INVALID_PAYLOAD_TYPE, `${where}: unexpected ${name(P, p.type)} payload`);
    if (slot.statusOnly && p.type === P.N && p.notifyType < NT.CONNECTED) {
      return bad(NT.PAYLOAD_MALFORMED, `${where}: error notify ${name(NT, p.notifyType)} not allowed`);
    }
    counts[i] = (counts[i] ?? 0) + 1;
  }
  for (const [i, slot] of rule.slots.entries()) {
    const n = counts[i] ?? 0;
    if (!slotOk(slot, n)) {
      const what = slot.types.map((t) => name(P, t)).join('|');
      return bad(NT.PAYLOAD_MALFORMED, `${where}: ${n} ${what} payload(s) not allowed`);
    }
  }
  if (rule.requireOneOf && !payloads.some((p) => rule.requireOneOf?.includes(p.type))) {
    const what = rule.requireOneOf.map((t) => name(P, t)).join(' or ');
    return bad(NT.PAYLOAD_MALFORMED, `${where}: needs ${what}`);
  }
  return { ok: true };
}
