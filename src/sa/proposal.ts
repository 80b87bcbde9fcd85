import { encrById, isSupported } from '../crypto/transforms.js';
import { PROTOCOL, TRANSFORM_TYPE } from '../wire/ikev2/constants.js';
import type { Proposal, Transform } from '../wire/ikev2/types.js';

/**
 * Proposals as policy (lists of acceptable algorithms) and as negotiated
 * suites (one algorithm of each type). Conversion to and from the IKEv2 SA
 * payload, and responder-side selection.
 */
export interface EncrChoice {
  id: number;
  /** Key Length attribute in bits; undefined for fixed-size ciphers. */
  keyLen?: number;
}

export interface IkeProposalSpec {
  encr: EncrChoice[];
  prf: number[];
  /** Empty for AEAD-only proposals. */
  integ: number[];
  ke: number[];
}

export interface EspProposalSpec {
  encr: EncrChoice[];
  integ: number[];
  /** PFS groups; empty = no PFS. */
  ke: number[];
  /** Extended sequence numbers acceptable, in preference order (default [false]). */
  esn: boolean[];
}

export interface IkeSuite {
  encr: EncrChoice;
  prf: number;
  integ?: number;
  ke: number;
}

export interface EspSuite {
  encr: EncrChoice;
  integ?: number;
  ke?: number;
  esn: boolean;
}

const KEY_LENGTH_ATTR = 14;
const INTEG_NONE = 0;

export function isAead(encrId: number): boolean {
  return isSupported.encr(encrId) && encrById(encrId).kind === 'aead';
}

function encrTransform(e: EncrChoice): Transform {
  return {
    type: TRANSFORM_TYPE.ENCR,
    id: e.id,
    attributes: e.keyLen === undefined ? [] : [{ type: KEY_LENGTH_ATTR, value: e.keyLen, tv: true }],
  };
}

function t(type: number, id: number): Transform {
  return { type, id, attributes: [] };
}

export function ikeSpecToWire(specs: readonly IkeProposalSpec[], spi: Buffer = Buffer.alloc(0)): Proposal[] {
  return specs.map((s, i) => ({
    num: i + 1,
    protocolId: PROTOCOL.IKE,
    spi,
    transforms: [
      ...s.encr.map(encrTransform),
      ...s.prf.map((p) => t(TRANSFORM_TYPE.PRF, p)),
      ...s.integ.map((p) => t(TRANSFORM_TYPE.INTEG, p)),
      ...s.ke.map((p) => t(TRANSFORM_TYPE.KE, p)),
    ],
  }));
}

export function espSpecToWire(specs: readonly EspProposalSpec[], spi: Buffer, pfsGroupFirst?: number): Proposal[] {
  return specs.map((s, i) => {
    const ke =
      pfsGroupFirst !== undefined && s.ke.includes(pfsGroupFirst)
        ? [pfsGroupFirst, ...s.ke.filter((g) => g !== pfsGroupFirst)]
        : s.ke;
    return {
      num: i + 1,
      protocolId: PROTOCOL.ESP,
      spi,
      transforms: [
        ...s.encr.map(encrTransform),
        ...s.integ.map((p) => t(TRANSFORM_TYPE.INTEG, p)),
        ...ke.map((p) => t(TRANSFORM_TYPE.KE, p)),
        ...(s.esn.length ? s.esn : [false]).map((e) => t(TRANSFORM_TYPE.ESN, e ? 1 : 0)),
      ],
    };
  });
}

export function ikeSuiteToWire(s: IkeSuite, num: number, spi: Buffer = Buffer.alloc(0)): Proposal {
  const [p] = ikeSpecToWire(
    [{ encr: [s.encr], prf: [s.prf], integ: s.integ === undefined ? [] : [s.integ], ke: [s.ke] }],
    spi,
  );
  return { ...(p as Proposal), num };
}

export function espSuiteToWire(s: EspSuite, num: number, spi: Buffer): Proposal {
  const [p] = espSpecToWire(
    [
      {
        encr: [s.encr],
        integ: s.integ === undefined ? [] : [s.integ],
        ke: s.ke === undefined ? [] : [s.ke],
        esn: [s.esn],
      },
    ],
    spi,
  );
  return { ...(p as Proposal), num };
}

function keyLenOf(tr: Transform): number | undefined | null {
  let len: number | undefined;
  for (const a of tr.attributes) {
    if (a.type !== KEY_LENGTH_ATTR) return null; // unknown attribute: transform unusable
    if (typeof a.value !== 'number') return null;
    len = a.value;
  }
  return len;
}

function byType(p: Proposal, type: number): Transform[] {
  return p.transforms.filter((x) => x.type === type);
}

function pickEncr(offered: Transform[], ours: readonly EncrChoice[]): EncrChoice | undefined {
  for (const o of offered) {
    const len = keyLenOf(o);
    if (len === null) continue;
    if (ours.some((c) => c.id === o.id && c.keyLen === len))
      return len === undefined ? { id: o.id } : { id: o.id, keyLen: len };
  }
  return undefined;
}

function pickId(offered: Transform[], ours: readonly number[]): number | undefined {
  return offered.find((o) => o.attributes.length === 0 && ours.includes(o.id))?.id;
}

const IKE_TYPES = new Set<number>([TRANSFORM_TYPE.ENCR, TRANSFORM_TYPE.PRF, TRANSFORM_TYPE.INTEG, TRANSFORM_TYPE.KE]);
const ESP_TYPES = new Set<number>([TRANSFORM_TYPE.ENCR, TRANSFORM_TYPE.INTEG, TRANSFORM_TYPE.KE, TRANSFORM_TYPE.ESN]);

/** Responder selection: the first offered proposal acceptable under one of our specs. */
export function selectIkeProposal(
  offered: readonly Proposal[],
  ours: readonly IkeProposalSpec[],
): { suite: IkeSuite; num: number } | undefined {
  for (const p of offered) {
    if (p.protocolId !== PROTOCOL.IKE) continue;
    if (p.transforms.some((x) => !IKE_TYPES.has(x.type))) continue; // e.g. ADDKE we do not implement
    for (const s of ours) {
      const encr = pickEncr(byType(p, TRANSFORM_TYPE.ENCR), s.encr);
      const prf = pickId(byType(p, TRANSFORM_TYPE.PRF), s.prf);
      const ke = pickId(byType(p, TRANSFORM_TYPE.KE), s.ke);
      if (!encr || prf === undefined || ke === undefined) continue;
      const offeredInteg = byType(p, TRANSFORM_TYPE.INTEG).filter((x) => x.id !== INTEG_NONE);
      if (isAead(encr.id)) {
        if (offeredInteg.length > 0 && !byType(p, TRANSFORM_TYPE.INTEG).some((x) => x.id === INTEG_NONE)) continue;
        return { suite: { encr, prf, ke }, num: p.num };
      }
      const integ = pickId(offeredInteg, s.integ);
      if (integ === undefined) continue;
      return { suite: { encr, prf, integ, ke }, num: p.num };
    }
  }
  return undefined;
}

/**
 * Responder selection for ESP. `ke` says what the request carried:
 * - 'ignore': IKE_AUTH (the first Child SA never runs a KE; KE transforms are ignored),
 * - undefined: CREATE_CHILD_SA without a KE payload (no PFS possible),
 * - a group number: CREATE_CHILD_SA with a KE payload of that group.
 * With `anyGroup` the KE group is chosen from our preference instead (used to
 * find the group for an INVALID_KE_PAYLOAD answer).
 */
export function selectEspProposal(
  offered: readonly Proposal[],
  ours: readonly EspProposalSpec[],
  ke: number | 'ignore' | undefined,
  anyGroup = false,
): { suite: EspSuite; num: number; spi: Buffer } | undefined {
  for (const p of offered) {
    if (p.protocolId !== PROTOCOL.ESP || p.spi.length !== 4) continue;
    if (p.transforms.some((x) => !ESP_TYPES.has(x.type))) continue;
    for (const s of ours) {
      const encr = pickEncr(byType(p, TRANSFORM_TYPE.ENCR), s.encr);
      if (!encr) continue;
      let integ: number | undefined;
      const allInteg = byType(p, TRANSFORM_TYPE.INTEG);
      const offeredInteg = allInteg.filter((x) => x.id !== INTEG_NONE);
      if (isAead(encr.id)) {
        if (offeredInteg.length > 0 && !allInteg.some((x) => x.id === INTEG_NONE)) continue;
      } else {
        integ = pickId(offeredInteg, s.integ);
        if (integ === undefined) continue;
      }
      const allKe = byType(p, TRANSFORM_TYPE.KE);
      const offeredKe = allKe.filter((x) => x.id !== 0);
      const offeredAllowsNone = offeredKe.length === 0 || allKe.some((x) => x.id === 0);
      let group: number | undefined;
      if (ke !== 'ignore') {
        if (ke === undefined && !anyGroup) {
          if (!offeredAllowsNone || s.ke.length > 0) continue;
        } else {
          group = anyGroup
            ? pickId(offeredKe, s.ke)
            : offeredKe.some((x) => x.id === ke) && s.ke.includes(ke as number)
              ? ke
              : undefined;
          if (group === undefined) continue;
        }
      }
      const esnOffered = byType(p, TRANSFORM_TYPE.ESN).map((x) => x.id === 1);
      const esnOurs = s.esn.length ? s.esn : [false];
      const esn = (esnOffered.length ? esnOffered : [false]).find((e) => esnOurs.includes(e));
      if (esn === undefined) continue;
      const suite: EspSuite = { encr, esn };
      if (integ !== undefined) suite.integ = integ;
      if (group !== undefined) suite.ke = group;
      return { suite, num: p.num, spi: p.spi };
    }
  }
  return undefined;
}

/** Parses the single-transform proposal a responder returned, checking it is one we offered. */
export function acceptedIkeSuite(answer: Proposal, offered: readonly IkeProposalSpec[]): IkeSuite | undefined {
  for (const x of answer.transforms) if (!IKE_TYPES.has(x.type)) return undefined;
  const counts = new Map<number, number>();
  for (const x of answer.transforms) counts.set(x.type, (counts.get(x.type) ?? 0) + 1);
  if ([...counts.values()].some((n) => n > 1)) return undefined;
  const sel = selectIkeProposal([answer], offered);
  return sel?.suite;
}

export function acceptedEspSuite(
  answer: Proposal,
  offered: readonly EspProposalSpec[],
  pfsGroup: number | 'ignore' | undefined,
): EspSuite | undefined {
  const counts = new Map<number, number>();
  for (const x of answer.transforms) counts.set(x.type, (counts.get(x.type) ?? 0) + 1);
  if ([...counts.values()].some((n) => n > 1)) return undefined;
  return selectEspProposal([answer], offered, pfsGroup)?.suite;
}

const PRF_NAMES: Record<number, string> = { 2: 'prfsha1', 5: 'prfsha256', 6: 'prfsha384', 7: 'prfsha512' };
const INTEG_NAMES: Record<number, string> = { 2: 'sha1', 12: 'sha256', 13: 'sha384', 14: 'sha512' };
const KE_NAMES: Record<number, string> = {
  14: 'modp2048',
  15: 'modp3072',
  16: 'modp4096',
  19: 'ecp256',
  20: 'ecp384',
  21: 'ecp521',
  31: 'x25519',
  32: 'x448',
};

function encrName(e: EncrChoice): string {
  if (e.id === 20) return `aes${e.keyLen ?? 128}gcm16`;
  if (e.id === 12) return `aes${e.keyLen ?? 128}`;
  if (e.id === 28) return 'chacha20poly1305';
  return `encr${e.id}`;
}

/** Human form for logs and status in strongSwan's token style, e.g. "aes256gcm16/prfsha256/x25519". */
export function suiteName(s: IkeSuite | EspSuite): string {
  const parts = [encrName(s.encr)];
  if (s.integ !== undefined) parts.push(INTEG_NAMES[s.integ] ?? `integ${s.integ}`);
  if ('prf' in s) parts.push(PRF_NAMES[s.prf] ?? `prf${s.prf}`);
  if (s.ke !== undefined) parts.push(KE_NAMES[s.ke] ?? `ke${s.ke}`);
  if ('esn' in s && s.esn) parts.push('esn');
  return parts.join('/');
}
