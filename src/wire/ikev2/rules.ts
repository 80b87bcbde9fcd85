/**
 * Which payloads each exchange may carry (RFC 7296 §1.2-1.4, RFC 9242), as
 * data: per exchange and direction, the allowed payload types with their
 * counts, groups that must appear together, and groups of which at least one
 * must appear. Checked after decoding (and after decryption for the inner
 * payloads), before any payload is interpreted.
 */
import { EXCHANGE, NOTIFY, NOTIFY_STATUS_MIN, name, PAYLOAD } from './constants.js';
import { isNotify, isUnknown, type Payload } from './types.js';

export type RulesResult = { ok: true } | { ok: false; reason: string; notify: number };

/** [min, max] occurrences of a payload type. */
type Count = readonly [number, number];
const ONE: Count = [1, 1];
const OPT: Count = [0, 1];
const ANY: Count = [0, Number.POSITIVE_INFINITY];

interface DirectionRule {
  counts: Readonly<Partial<Record<number, Count>>>;
  /** All of these or none. */
  together?: readonly (readonly number[])[];
  /** At least one of these. */
  oneOf?: readonly (readonly number[])[];
}

interface ExchangeRule {
  /** All payloads inside SK/SKF; only SK or SKF at the top level. */
  encrypted: boolean;
  request: DirectionRule;
  response: DirectionRule;
  /** Status notifies that may form a response on their own (besides error notifies). */
  notifyOnlyResponses?: readonly number[];
}

const CHILD_SA = [PAYLOAD.SA, PAYLOAD.TSi, PAYLOAD.TSr] as const;

export const EXCHANGE_RULES: Readonly<Record<number, ExchangeRule>> = {
  [EXCHANGE.IKE_SA_INIT]: {
    encrypted: false,
    request: {
      counts: {
        [PAYLOAD.SA]: ONE,
        [PAYLOAD.KE]: ONE,
        [PAYLOAD.NONCE]: ONE,
        [PAYLOAD.NOTIFY]: ANY,
        [PAYLOAD.VENDOR]: ANY,
      },
    },
    response: {
      counts: {
        [PAYLOAD.SA]: ONE,
        [PAYLOAD.KE]: ONE,
        [PAYLOAD.NONCE]: ONE,
        [PAYLOAD.CERTREQ]: ANY,
        [PAYLOAD.NOTIFY]: ANY,
        [PAYLOAD.VENDOR]: ANY,
      },
    },
    notifyOnlyResponses: [NOTIFY.COOKIE, NOTIFY.REDIRECT],
  },
  [EXCHANGE.IKE_AUTH]: {
    encrypted: true,
    request: {
      counts: {
        [PAYLOAD.IDi]: OPT,
        [PAYLOAD.CERT]: ANY,
        [PAYLOAD.CERTREQ]: ANY,
        [PAYLOAD.IDr]: OPT,
        [PAYLOAD.AUTH]: OPT,
        [PAYLOAD.EAP]: OPT,
        [PAYLOAD.CP]: OPT,
        [PAYLOAD.SA]: OPT,
        [PAYLOAD.TSi]: OPT,
        [PAYLOAD.TSr]: OPT,
        [PAYLOAD.NOTIFY]: ANY,
        [PAYLOAD.VENDOR]: ANY,
      },
      together: [CHILD_SA],
      oneOf: [[PAYLOAD.IDi, PAYLOAD.AUTH, PAYLOAD.EAP]],
    },
    response: {
      counts: {
        [PAYLOAD.IDr]: OPT,
        [PAYLOAD.CERT]: ANY,
        [PAYLOAD.AUTH]: OPT,
        [PAYLOAD.EAP]: OPT,
        [PAYLOAD.CP]: OPT,
        [PAYLOAD.SA]: OPT,
        [PAYLOAD.TSi]: OPT,
        [PAYLOAD.TSr]: OPT,
        [PAYLOAD.NOTIFY]: ANY,
        [PAYLOAD.VENDOR]: ANY,
      },
      together: [CHILD_SA],
      oneOf: [[PAYLOAD.IDr, PAYLOAD.AUTH, PAYLOAD.EAP]],
    },
  },
  [EXCHANGE.CREATE_CHILD_SA]: {
    encrypted: true,
    request: {
      counts: {
        [PAYLOAD.SA]: ONE,
        [PAYLOAD.NONCE]: ONE,
        [PAYLOAD.KE]: OPT,
        [PAYLOAD.TSi]: OPT,
        [PAYLOAD.TSr]: OPT,
        [PAYLOAD.NOTIFY]: ANY,
        [PAYLOAD.VENDOR]: ANY,
      },
      together: [[PAYLOAD.TSi, PAYLOAD.TSr]],
    },
    response: {
      counts: {
        [PAYLOAD.SA]: ONE,
        [PAYLOAD.NONCE]: ONE,
        [PAYLOAD.KE]: OPT,
        [PAYLOAD.TSi]: OPT,
        [PAYLOAD.TSr]: OPT,
        [PAYLOAD.NOTIFY]: ANY,
        [PAYLOAD.VENDOR]: ANY,
      },
      together: [[PAYLOAD.TSi, PAYLOAD.TSr]],
    },
  },
  [EXCHANGE.INFORMATIONAL]: {
    encrypted: true,
    request: {
      counts: { [PAYLOAD.NOTIFY]: ANY, [PAYLOAD.DELETE]: ANY, [PAYLOAD.CP]: OPT, [PAYLOAD.VENDOR]: ANY },
    },
    response: {
      counts: { [PAYLOAD.NOTIFY]: ANY, [PAYLOAD.DELETE]: ANY, [PAYLOAD.CP]: OPT, [PAYLOAD.VENDOR]: ANY },
    },
  },
  [EXCHANGE.IKE_INTERMEDIATE]: {
    encrypted: true,
    request: { counts: { [PAYLOAD.KE]: OPT, [PAYLOAD.NOTIFY]: ANY, [PAYLOAD.VENDOR]: ANY } },
    response: { counts: { [PAYLOAD.KE]: OPT, [PAYLOAD.NOTIFY]: ANY, [PAYLOAD.VENDOR]: ANY } },
  },
};

function fail(reason: string, notify: number = NOTIFY.INVALID_SYNTAX): RulesResult {
  return { ok: false, reason, notify };
}

/** A response made only of notifies (and vendor IDs), at least one an error or an allowed status. */
function isNotifyOnlyResponse(payloads: readonly Payload[], statuses: readonly number[]): boolean {
  let answer = false;
  for (const p of payloads) {
    if (isUnknown(p) || p.type === PAYLOAD.VENDOR) continue;
    if (!isNotify(p)) return false;
    if (p.notifyType < NOTIFY_STATUS_MIN || statuses.includes(p.notifyType)) answer = true;
  }
  return answer;
}

const OK: RulesResult = { ok: true };

/**
 * The rule's counts as flat [type, min, max, type, min, max, ...] rows, built
 * once per rule (not per message). Flat: destructuring row tuples in the loop
 * below allocated an iterator result per element of every row of every message.
 */
const countRows = new WeakMap<DirectionRule, Int32Array>();
function rowsOf(rule: DirectionRule): Int32Array {
  let rows = countRows.get(rule);
  if (!rows) {
    const entries = Object.entries(rule.counts).filter((e): e is [string, Count] => e[1] !== undefined);
    rows = new Int32Array(entries.length * 3);
    entries.forEach(([t, c], i) => {
      rows?.set([Number(t), c[0], Math.min(c[1], 0x7fffffff)], i * 3);
    });
    countRows.set(rule, rows);
  }
  return rows;
}

/** Occurrences per payload type (types are one octet), reset after each check. */
const seenCount = new Uint32Array(256);

function checkDirection(rule: DirectionRule, payloads: readonly Payload[], where: () => string): RulesResult {
  const counted: number[] = [];
  try {
    for (let i = 0; i < payloads.length; i++) {
      const p = payloads[i] as Payload;
      if (isUnknown(p)) continue; // non-critical unknown payloads are ignored (RFC 7296 §2.5)
      const count = rule.counts[p.type];
      if (!count) return fail(`${name(PAYLOAD, p.type)} not allowed in ${where()}`);
      const t = p.type & 0xff;
      if (seenCount[t] === 0) counted.push(t);
      seenCount[t] = (seenCount[t] as number) + 1;
    }
    const seen = (t: number) => (seenCount[t & 0xff] as number) > 0;
    const rows = rowsOf(rule);
    for (let i = 0; i < rows.length; i += 3) {
      const type = rows[i] as number;
      const min = rows[i + 1] as number;
      const max = rows[i + 2] as number;
      const n = seenCount[type & 0xff] as number;
      if (n < min) return fail(`${where()} lacks ${name(PAYLOAD, type)}`);
      if (n > max) return fail(`${where()} has ${n} ${name(PAYLOAD, type)} payloads, at most ${max} allowed`);
    }
    for (const group of rule.together ?? []) {
      let present = 0;
      for (const t of group) if (seen(t)) present++;
      if (present > 0 && present < group.length) {
        const names = group.map((t) => name(PAYLOAD, t)).join('/');
        return fail(`${where()} has only part of ${names}, which go together`);
      }
    }
    for (const group of rule.oneOf ?? []) {
      if (!group.some(seen)) {
        return fail(`${where()} needs one of ${group.map((t) => name(PAYLOAD, t)).join('/')}`);
      }
    }
    return OK;
  } finally {
    for (const t of counted) seenCount[t] = 0;
  }
}

/**
 * Check a decoded message's payloads against the exchange's rules.
 * `outerPayloads` are the top-level payloads; `innerPayloads` the decrypted
 * contents of SK (or the reassembled SKF fragments). For an encrypted exchange
 * with `innerPayloads` omitted only the envelope (a lone SK/SKF) is checked,
 * which is useful before decryption.
 */
export function checkExchangeRules(
  exchangeType: number,
  isResponse: boolean,
  outerPayloads: readonly Payload[],
  innerPayloads?: readonly Payload[],
): RulesResult {
  const rule = EXCHANGE_RULES[exchangeType];
  const where = () => `${name(EXCHANGE, exchangeType)} ${isResponse ? 'response' : 'request'}`;
  if (!rule) return fail(`no payload rules for ${where()}`);
  let body: readonly Payload[];
  if (rule.encrypted) {
    const only = outerPayloads[0];
    if (outerPayloads.length !== 1 || !only || (only.type !== PAYLOAD.SK && only.type !== PAYLOAD.SKF)) {
      const plain = outerPayloads.find((p) => p.type !== PAYLOAD.SK && p.type !== PAYLOAD.SKF);
      return fail(
        plain
          ? `${where()} carries ${name(PAYLOAD, plain.type)} outside the encrypted payload`
          : `${where()} must carry exactly one SK or SKF payload`,
      );
    }
    if (innerPayloads === undefined) return OK;
    body = innerPayloads;
  } else {
    if (innerPayloads !== undefined) return fail(`${where()} has no encrypted payload`);
    const enc = outerPayloads.find((p) => p.type === PAYLOAD.SK || p.type === PAYLOAD.SKF);
    if (enc) return fail(`${name(PAYLOAD, enc.type)} not allowed in ${where()}`);
    body = outerPayloads;
  }
  if (isResponse && isNotifyOnlyResponse(body, rule.notifyOnlyResponses ?? [])) return OK;
  return checkDirection(isResponse ? rule.response : rule.request, body, where);
}
