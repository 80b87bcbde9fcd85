/**
 * Property tests of the IKEv1 engine on authenticated garbage: a peer that holds the keys
 * and sends mutated messages (the IKEv2 counterpart is ikev2-engine.test.ts). The decoder
 * fuzz (ikev1-decode.test.ts) covers bytes that do not decode; this covers messages that
 * decrypt and, where the exchange protects them with a HASH, carry the right one, and then
 * reach the exchanges: every Main Mode and Aggressive Mode message, Quick Mode 1-3 of the
 * first phase 2 SA and of a rekey, a phase 1 re-negotiation, DPD R-U-THERE and its ACK, and
 * the DELETEs of a phase 2 and of an ISAKMP SA, each mutated once in one of several ways
 * (bit flips, boundary bytes, truncation, payloads dropped, duplicated, reordered or taken
 * from another exchange).
 *
 * The mutation happens where the sender protects the message (`IsakmpSa.seal` and
 * `sealPlain`, wrapped for the test): the sender's engine encrypts the mutated chain, so the
 * CBC IV chain the two ends carry stays in step, as it would with a peer that means it. For
 * Quick Mode 1 and 2 and Informational messages, HASH(1)/HASH(2) is computed again over the
 * mutated payloads (most of the time; otherwise the HASH itself is part of what is mutated).
 *
 * Each case: two engines, a and b; one ISAKMP SA with a phase 2 SA (Main Mode with
 * AES-CBC + HMAC-SHA-256 phase 2 SAs in transport mode, the same with PFS, Aggressive Mode
 * with an AES-GCM phase 2 SA in tunnel mode, or Main Mode with a NAT in front of a, in turn);
 * one message mutated; then 120 s of retransmissions, timeouts and liveness. It checks that:
 * - the re-protection was right: no mutated message whose payload chain is well formed died
 *   at its HASH check;
 * - every ESP SA in each memory kernel belongs to a phase 2 SA its engine holds, and each
 *   installed phase 2 SA has both of its SAs;
 * - about 570 s in, after each side's first phase 2 rekey and before the 600 s hard expiry,
 *   every installed phase 2 SA on one side has its counterpart (SPIs crossed) on the other
 *   (behind the NAT, all of them UDP-encapsulated);
 * - nothing threw out of the engine (an error log of a failed message handler or receive path);
 * - the two engines still form a new ISAKMP SA and phase 2 SA with each other.
 *
 *   COATI_FUZZ_CASES=3000 COATI_FUZZ_SEED=7 npx vitest run test/fuzz/ikev1-engine.test.ts
 *
 * COATI_FUZZ_REPORT=FILE writes the failing cases to FILE; COATI_FUZZ_ONLY=N runs case N
 * alone and prints both engines' events; COATI_FUZZ_VERBOSE=1 prints every case.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { informationalHash, payloadChainLength, quickModeHash1, quickModeHash2 } from '../../src/crypto/ikev1/index.js';
import { deleteChildren } from '../../src/ikev1/informational.js';
import { IsakmpSa } from '../../src/ikev1/isakmp-sa.js';
import { quickModesInFlight } from '../../src/ikev1/quick-mode.js';
import type { PeerPolicy } from '../../src/sa/policy.js';
import {
  encodeEncryptedIsakmp,
  encodeIsakmpMessage,
  encodeV1PayloadChain,
  type IsakmpHeaderFields,
  V1ExchangeType,
  V1NotifyType,
  type V1Payload,
  V1PayloadType,
  V1ProtocolId,
} from '../../src/wire/ikev1/index.js';
import {
  agreementProblems,
  encapProblems,
  escapedErrors,
  type HeldChild,
  kernelProblems,
  type Mutated,
  mutateChain,
  prng,
  type Rng,
} from '../helpers/engine-fuzz.js';
import {
  ESP_AES128_SHA256,
  ESP_AES128_SHA256_PFS,
  ESP_GCM256,
  V1Mesh,
  type V1Node,
  v1Policy,
} from '../helpers/ike1-pair.js';

const CASES = Number(process.env.COATI_FUZZ_CASES ?? '') || 360;
const SEED = Number(process.env.COATI_FUZZ_SEED ?? '') || 0x5eed_1c1e;
/** As in the IKEv2 fuzz: the agreement check runs about 570 s into the case (see there). */
const HEAL_MS = 450_000;

const MM = V1ExchangeType.IDENTITY_PROTECTION;
const AM = V1ExchangeType.AGGRESSIVE;
const QM = V1ExchangeType.QUICK_MODE;
const INFO = V1ExchangeType.INFORMATIONAL;
const HASH = V1PayloadType.HASH;

/** What a protected message is, from the sender's side. */
type Kind =
  | 'p1-1'
  | 'p1-2'
  | 'p1-3'
  | 'p1-4'
  | 'p1-5'
  | 'p1-6'
  | 'qm1'
  | 'qm2'
  | 'qm3'
  | 'dpd-req'
  | 'dpd-ack'
  | 'delete-child'
  | 'delete-isakmp'
  | 'other';

/** When the mutated message is sent: in the first handshake, or in an exchange started later by a. */
type Phase = 'handshake' | 'rekey' | 'reneg' | 'dpd' | 'delete-child' | 'delete-isakmp';

interface Target {
  name: string;
  kind: Kind;
  phase: Phase;
}

const p1 = (n: number, phase: Phase, prefix: string): Target => ({
  name: `${prefix}${n}`,
  kind: `p1-${n}` as Kind,
  phase,
});
const COMMON: Target[] = [
  { name: 'qm1', kind: 'qm1', phase: 'handshake' },
  { name: 'qm2', kind: 'qm2', phase: 'handshake' },
  { name: 'qm3', kind: 'qm3', phase: 'handshake' },
  { name: 'rekey-qm1', kind: 'qm1', phase: 'rekey' },
  { name: 'rekey-qm2', kind: 'qm2', phase: 'rekey' },
  { name: 'rekey-qm3', kind: 'qm3', phase: 'rekey' },
  { name: 'dpd-req', kind: 'dpd-req', phase: 'dpd' },
  { name: 'dpd-ack', kind: 'dpd-ack', phase: 'dpd' },
  { name: 'delete-child', kind: 'delete-child', phase: 'delete-child' },
  { name: 'delete-isakmp', kind: 'delete-isakmp', phase: 'delete-isakmp' },
];
/** Main Mode variants: the six messages of the first Main Mode, and two of a re-negotiation. */
const MAIN_TARGETS: Target[] = [
  ...[1, 2, 3, 4, 5, 6].map((n) => p1(n, 'handshake', 'mm')),
  p1(5, 'reneg', 'reneg-mm'),
  p1(6, 'reneg', 'reneg-mm'),
  ...COMMON,
];
/** The Aggressive Mode variant: its three messages, and two of a re-negotiation. */
const AGGRESSIVE_TARGETS: Target[] = [
  ...[1, 2, 3].map((n) => p1(n, 'handshake', 'am')),
  p1(2, 'reneg', 'reneg-am'),
  p1(3, 'reneg', 'reneg-am'),
  ...COMMON,
];

const VARIANTS = [
  { name: 'main/cbc-sha256/transport', aggressive: false, esp: ESP_AES128_SHA256, mode: 'transport' },
  { name: 'main/cbc-sha256-pfs/transport', aggressive: false, esp: ESP_AES128_SHA256_PFS, mode: 'transport' },
  { name: 'aggressive/gcm/tunnel', aggressive: true, esp: ESP_GCM256, mode: 'tunnel' },
  { name: 'main/cbc-sha256/transport/nat', aggressive: false, esp: ESP_AES128_SHA256, mode: 'transport', nat: true },
] as const;
/** The NAT variant's public address of a. */
const NAT_OUTSIDE = '203.0.113.9';

const hex = (b: Buffer) => b.toString('hex');

/** Payloads seen in earlier messages (any exchange), spliced into later ones. */
const corpus: V1Payload[] = [];
/** The initiator's nonce of each Quick Mode (its QM2 HASH covers it), by cookies and message ID. */
const qmNonces = new Map<string, Buffer>();

function classify(sa: IsakmpSa, exch: number, mid: number, payloads: readonly V1Payload[], encrypted: boolean): Kind {
  const has = (t: number) => payloads.some((p) => p.type === t);
  const init = sa.role === 'initiator';
  if (exch === MM) {
    if (encrypted) return init ? 'p1-5' : 'p1-6';
    if (has(V1PayloadType.SA)) return init ? 'p1-1' : 'p1-2';
    if (has(V1PayloadType.KE)) return init ? 'p1-3' : 'p1-4';
    return 'other';
  }
  if (exch === AM) return !init ? 'p1-2' : encrypted || has(HASH) ? 'p1-3' : 'p1-1';
  if (exch === QM) {
    const key = `${hex(sa.cookieI)}${hex(sa.cookieR)}/${mid >>> 0}`;
    if (payloads.length === 1) return 'qm3';
    if (qmNonces.has(key)) return 'qm2';
    const nonce = payloads.find((p) => p.type === V1PayloadType.NONCE) as { data: Buffer } | undefined;
    if (nonce) qmNonces.set(key, Buffer.from(nonce.data));
    return 'qm1';
  }
  if (exch === INFO && encrypted) {
    const p = payloads[1];
    if (p?.type === V1PayloadType.D) return p.protocolId === V1ProtocolId.ISAKMP ? 'delete-isakmp' : 'delete-child';
    if (p?.type === V1PayloadType.N && p.notifyType === V1NotifyType.R_U_THERE) return 'dpd-req';
    if (p?.type === V1PayloadType.N && p.notifyType === V1NotifyType.R_U_THERE_ACK) return 'dpd-ack';
  }
  return 'other';
}

/** The mutated chain, and whether its HASH covers it as the receiver will check it (a mismatch would be our fault). */
function mutateMessage(
  rng: Rng,
  sa: IsakmpSa,
  exch: number,
  mid: number,
  kind: Kind,
  payloads: readonly V1Payload[],
): Mutated & { hashCovered: boolean } {
  const mutate = (ps: readonly V1Payload[]) =>
    mutateChain(rng, ps, corpus, encodeV1PayloadChain, [0, HASH, V1PayloadType.N, V1PayloadType.D]);
  const hashed = (kind === 'qm1' || kind === 'qm2' || exch === INFO) && payloads[0]?.type === HASH;
  if (!hashed || !sa.prf || !sa.keys || rng.next() < 0.15) return { ...mutate(payloads), hashCovered: false };
  const m = mutate(payloads.slice(1));
  const ni = qmNonces.get(`${hex(sa.cookieI)}${hex(sa.cookieR)}/${mid >>> 0}`);
  const h =
    kind === 'qm1'
      ? quickModeHash1(sa.prf, sa.keys.skeyidA, mid, m.bytes)
      : kind === 'qm2'
        ? quickModeHash2(sa.prf, sa.keys.skeyidA, mid, ni ?? Buffer.alloc(0), m.bytes)
        : informationalHash(sa.prf, sa.keys.skeyidA, mid, m.bytes);
  const head = Buffer.alloc(4);
  head[0] = m.firstType;
  head.writeUInt16BE(4 + h.length, 2);
  const bytes = Buffer.concat([head, h, m.bytes]);
  let hashCovered: boolean;
  try {
    hashCovered = payloadChainLength(bytes, HASH) === bytes.length;
  } catch {
    hashCovered = false;
  }
  return { firstType: HASH, bytes, how: `${m.how} (HASH recomputed)`, hashCovered };
}

type SealHook = (
  sa: IsakmpSa,
  exch: number,
  mid: number,
  payloads: V1Payload[],
  encrypted: boolean,
) => Buffer | undefined;
let hook: SealHook | undefined;
const original = { seal: IsakmpSa.prototype.seal, sealPlain: IsakmpSa.prototype.sealPlain };

beforeAll(() => {
  IsakmpSa.prototype.seal = function (this: IsakmpSa, exch: number, mid: number, payloads: V1Payload[]) {
    return hook?.(this, exch, mid, payloads, true) ?? original.seal.call(this, exch, mid, payloads);
  };
  IsakmpSa.prototype.sealPlain = function (this: IsakmpSa, exch: number, mid: number, payloads: V1Payload[]) {
    return hook?.(this, exch, mid, payloads, false) ?? original.sealPlain.call(this, exch, mid, payloads);
  };
});
afterAll(() => {
  IsakmpSa.prototype.seal = original.seal;
  IsakmpSa.prototype.sealPlain = original.sealPlain;
});

/** The datagram `sa` would send, with the mutated chain in place of its own. */
function protect(sa: IsakmpSa, exch: number, mid: number, m: Mutated, encrypted: boolean): Buffer {
  const header = (sa as unknown as { header(e: number, m: number): IsakmpHeaderFields }).header(exch, mid);
  if (encrypted) {
    if (!sa.crypto) throw new Error('no keys');
    return encodeEncryptedIsakmp(header, m.firstType, sa.crypto.encrypt(mid, m.bytes));
  }
  const data = Buffer.concat([encodeIsakmpMessage(header, []).subarray(0, 28), m.bytes]);
  data[16] = m.firstType;
  data.writeUInt32BE(data.length, 24);
  return data;
}

const peerSas = (n: V1Node) => n.manager.sasOf(n.name === 'a' ? 'b' : 'a');

/**
 * Phase 2 SAs a node's engine holds: its ISAKMP SAs' and the pairs kept after INITIAL-CONTACT.
 * In IKEv1 a phase 2 SA outlives its ISAKMP SA (it moves to the next one), so agreement
 * compares the pairs only (no key).
 */
function held(n: V1Node): HeldChild[] {
  const peer = n.name === 'a' ? 'b' : 'a';
  const out: HeldChild[] = peerSas(n).flatMap((sa) =>
    [...sa.children.values()].map((child) => ({ child, local: sa.local.addr, remote: sa.remote.addr })),
  );
  const remote = n.manager.peer(peer)?.policy.remoteAddress ?? '';
  for (const child of n.manager.purgedPairs(peer)) out.push({ child, local: n.addr, remote });
  return out;
}
/** (An SPI reserved by a Quick Mode still under way belongs to no phase 2 SA yet.) */
const kernelConsistent = (n: V1Node) =>
  kernelProblems(
    n.name,
    n.kernel,
    held(n),
    peerSas(n).some((sa) => quickModesInFlight(sa) > 0),
  );
const childrenAgree = (a: V1Node, b: V1Node) =>
  agreementProblems({ name: a.name, held: held(a) }, { name: b.name, held: held(b) });

const reasonOf = (e: unknown) => String((e as { reason?: unknown }).reason);

async function runCase(
  seed: number,
  target: Target,
  variant: number,
): Promise<{ how: string; problems: string[]; drops: string[]; variantSeen: boolean }> {
  const rng = prng(seed);
  const m = new V1Mesh(seed);
  const a = m.add('a', '10.0.0.1');
  const b = m.add('b', '10.0.0.2');
  const v = VARIANTS[variant]!;
  const nat = 'nat' in v && v.nat;
  // The NAT variant: a behind a source NAT; b knows it by the NAT's address.
  if (nat) m.natBehind(a, NAT_OUTSIDE, 40000);
  // Phase 2 SAs re-key after about 8 minutes and expire after 10 (see HEAL_MS).
  const child = { lifetimeMs: 600_000, rekeyMarginMs: 120_000, mode: v.mode, espProposals: [v.esp] };
  const over: Partial<PeerPolicy> = { start: 'none', dpdAction: 'clear', aggressive: v.aggressive };
  a.manager.setPeer(v1Policy(a, b, over, child));
  b.manager.setPeer(v1Policy(b, nat ? { name: 'a', addr: NAT_OUTSIDE } : a, over, child));

  // Requests come from a (the first Main Mode's initiator, and the one that starts every later
  // exchange); the even phase 1 messages, QM2 and the DPD ACK come from b.
  const fromB = ['p1-2', 'p1-4', 'p1-6', 'qm2', 'dpd-ack'].includes(target.kind);
  let armed = target.phase === 'handshake';
  let how = 'not sent';
  let hashCovered = false;
  hook = (sa, exch, mid, payloads, encrypted) => {
    const kind = classify(sa, exch, mid, payloads, encrypted);
    for (const p of payloads) if (corpus.length < 400) corpus.push(p);
    if (!armed || kind !== target.kind || (sa.host === b.manager) !== fromB) return undefined;
    armed = false;
    const out = mutateMessage(rng, sa, exch, mid, kind, payloads);
    how = out.how;
    hashCovered = out.hashCovered;
    return protect(sa, exch, mid, out, encrypted);
  };

  await a.manager.initiate('b').catch(() => {});
  await m.settle();
  const first = a.manager.established('b')[0];
  const firstChild = first ? [...first.children.values()][0] : undefined;
  const variantSeen =
    first?.mode === (v.aggressive ? 'aggressive' : 'main') && firstChild?.mode === v.mode && first.nat.local === nat;
  if (target.phase !== 'handshake') {
    await m.advance(1000);
    const sa = a.manager.established('b')[0];
    if (sa) {
      armed = true;
      const c = [...sa.children.values()].find((x) => x.state === 'installed');
      if (target.phase === 'rekey' && c) await sa.queue.run(() => sa.rekeyChild!(c));
      else if (target.phase === 'reneg') a.manager.onIsakmpRekeyDue(sa);
      else if (target.phase === 'dpd') void sa.probe?.();
      else if (target.phase === 'delete-child' && c) await sa.queue.run(() => deleteChildren(sa, [c], 'fuzz'));
      else if (target.phase === 'delete-isakmp') await sa.queue.run(() => a.manager.deleteSa(sa, 'fuzz'));
    }
  }
  // Retransmissions, timeouts, the peers' own repair.
  await m.advance(120_000, 1000);

  const problems: string[] = [];
  // The re-protection must be right: a well-formed mutated chain under a recomputed HASH passes its
  // own check. (The next message's HASH may legitimately fail: a changed nonce in QM1 or QM2 is
  // part of HASH(2) or HASH(3), computed by each side over the nonce it sent or received.)
  // (A mutated KE or nonce in Main or Aggressive Mode leaves the two with different keys.)
  const keysMayDiffer = ['p1-1', 'p1-2', 'p1-3', 'p1-4'].includes(target.kind);
  const ownCheck =
    target.kind === 'qm1' ? /^QM1: HASH\(1\)/ : target.kind === 'qm2' ? /^QM2: HASH\(2\)/ : /^Informational: HASH\(1\)/;
  for (const n of [a, b])
    for (const e of n.events)
      if (
        e.type === 'packet.dropped' &&
        ((/decrypt:/.test(reasonOf(e)) && !keysMayDiffer) || (hashCovered && ownCheck.test(reasonOf(e))))
      )
        problems.push(`${n.name}: a re-protected message failed its check (${reasonOf(e)}): the harness is wrong`);
  const drops = [a, b].flatMap((n) => n.events.filter((e) => e.type === 'packet.dropped').map(reasonOf));
  problems.push(...(await kernelConsistent(a)), ...(await kernelConsistent(b)));
  // A peer that sent garbage can leave the two disagreeing for a while; by the next rekeys they agree again.
  await m.advance(HEAL_MS, 2000);
  problems.push(...childrenAgree(a, b).map((p) => `after the next rekeys: ${p}`));
  problems.push(...(await kernelConsistent(a)), ...(await kernelConsistent(b)));
  // Behind the NAT every pair stays encapsulated (a mutated MM3/MM4 may hide the NAT: its NAT-D is gone).
  if (nat && !keysMayDiffer)
    problems.push(...(await encapProblems('a', a.kernel)), ...(await encapProblems('b', b.kernel)));
  problems.push(...escapedErrors(a), ...escapedErrors(b));
  // Still usable: a fresh ISAKMP SA with its phase 2 SA forms between the two.
  hook = undefined;
  await Promise.all([a.manager.terminate('b'), b.manager.terminate('a')]).catch(() => {});
  await m.advance(30_000, 1000);
  await a.manager.initiate('b').catch((err: Error) => problems.push(`re-initiate: ${err.message}`));
  await m.settle();
  await m.advance(2000);
  const ea = a.manager.established('b');
  const eb = b.manager.established('a');
  if (ea.length < 1 || eb.length < 1) problems.push(`no fresh ISAKMP SA afterwards (a ${ea.length}, b ${eb.length})`);
  else if (!ea.some((x) => eb.some((y) => y.cookieI.equals(x.cookieI) && y.children.size > 0)))
    problems.push('the fresh ISAKMP SA is not the same on both sides or has no phase 2 SA');
  problems.push(...(await kernelConsistent(a)), ...(await kernelConsistent(b)));
  if (process.env.COATI_FUZZ_ONLY !== undefined)
    for (const n of [a, b])
      for (const e of n.events)
        console.log(n.name, JSON.stringify(e, (_k, x) => (typeof x === 'bigint' ? String(x) : x)).slice(0, 300));
  for (const n of [a, b]) await n.manager.close();
  return { how, problems, drops, variantSeen };
}

describe('IKEv1 engine: authenticated mutated messages', () => {
  it(`${CASES} cases over every message kind: no escaped exception, no orphan kernel SA, agreement, still usable`, {
    timeout: 600_000,
  }, async () => {
    const failures: string[] = [];
    const mutated = new Map<string, number>();
    const seen = new Set<number>();
    const only = process.env.COATI_FUZZ_ONLY === undefined ? undefined : Number(process.env.COATI_FUZZ_ONLY);
    for (let i = only ?? 0; i < (only === undefined ? CASES : only + 1); i++) {
      const variant = i % VARIANTS.length;
      const targets = VARIANTS[variant]!.aggressive ? AGGRESSIVE_TARGETS : MAIN_TARGETS;
      const target = targets[Math.floor(i / VARIANTS.length) % targets.length]!;
      const seed = (SEED + i * 7919) >>> 0;
      const { how, problems, drops, variantSeen } = await runCase(seed, target, variant);
      if (variantSeen) seen.add(variant);
      const key = `${VARIANTS[variant]!.aggressive ? 'aggressive' : 'main'}:${target.name}`;
      if (how !== 'not sent') mutated.set(key, (mutated.get(key) ?? 0) + 1);
      if (process.env.COATI_FUZZ_VERBOSE)
        console.log(i, key, how, problems.join(' ; '), '::', drops.slice(0, 6).join(' / '));
      if (problems.length)
        failures.push(
          `case ${i} seed ${seed} ${target.name} ${VARIANTS[variant]!.name} (${how}): ${problems.join('; ')}`,
        );
    }
    if (process.env.COATI_FUZZ_REPORT) writeFileSync(process.env.COATI_FUZZ_REPORT, `${failures.join('\n')}\n`);
    expect(failures).toEqual([]);
    if (only !== undefined) return;
    // Every kind of message was actually reached and mutated (the harness is not a no-op).
    for (const t of MAIN_TARGETS) expect(mutated.get(`main:${t.name}`) ?? 0, `main:${t.name}`).toBeGreaterThan(0);
    for (const t of AGGRESSIVE_TARGETS)
      expect(mutated.get(`aggressive:${t.name}`) ?? 0, `aggressive:${t.name}`).toBeGreaterThan(0);
    // And every suite and mode was negotiated.
    expect([...seen].sort()).toEqual(VARIANTS.map((_, i) => i));
  });

  it('the checks catch what they claim to: an orphan kernel SA and a one-sided pair are reported', async () => {
    const m = new V1Mesh(1);
    const a = m.add('a', '10.0.0.1');
    const b = m.add('b', '10.0.0.2');
    a.manager.setPeer(v1Policy(a, b, { start: 'none' }));
    b.manager.setPeer(v1Policy(b, a, { start: 'none' }));
    await a.manager.initiate('b');
    await m.settle();
    expect(await kernelConsistent(a)).toEqual([]);
    expect(childrenAgree(a, b)).toEqual([]);
    const [sa] = b.manager.established('a');
    sa!.children.clear(); // b's engine forgets its pair; its kernel still has the SAs
    expect((await kernelConsistent(b)).join('\n')).toMatch(/belongs to no Child SA/);
    expect(childrenAgree(a, b).join('\n')).toMatch(/a: child host \(in \d+, out \d+\) has no counterpart at b/);
  });
});
