import { createKeyExchange } from '../../crypto/dh.js';
import { deriveIkeSaKeys } from '../../crypto/ikev2/keys.js';
import { CoatiError } from '../../errors.js';
import {
  acceptedIkeSuite,
  type IkeProposalSpec,
  type IkeSuite,
  ikeSpecToWire,
  ikeSuiteToWire,
  selectIkeProposal,
} from '../../sa/proposal.js';
import { EXCHANGE, isKe, isNonce, isSa, type Payload } from '../../wire/ikev2/index.js';
import type { IkeSa } from '../ike-sa.js';
import { detectNat, natHash } from '../nat.js';
import { errorNotify, findNotify, N, notifies, P } from '../payloads.js';
import { MessageProtector } from '../protect.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from '../task-manager.js';
import {
  announceSignatureHashes,
  encodeSignatureHashes,
  OUR_SIGNATURE_HASHES,
  parseSignatureHashes,
  recordCertReq,
  responderCertReq,
} from './auth-pubkey.js';

const NONCE_BYTES = 32;
const MAX_COOKIE_RETRIES = 3;
const MAX_KE_RETRIES = 2;

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** Payloads both sides add to IKE_SA_INIT: NAT-D and capability notifies. */
function initNotifies(sa: IkeSa, spiR: Buffer): Payload[] {
  const out = [
    P.notify(N.NAT_DETECTION_SOURCE_IP, natHash(sa.spiI, spiR, sa.local)),
    P.notify(N.NAT_DETECTION_DESTINATION_IP, natHash(sa.spiI, spiR, sa.remote)),
  ];
  if (sa.peer?.fragmentation ?? true) out.push(P.notify(N.IKEV2_FRAGMENTATION_SUPPORTED));
  // RFC 7427: SHA2-256, SHA2-384, SHA2-512, Identity (Ed25519).
  if (announceSignatureHashes(sa))
    out.push(P.notify(N.SIGNATURE_HASH_ALGORITHMS, encodeSignatureHashes(OUR_SIGNATURE_HASHES)));
  return out;
}

/** The hash algorithms the peer announced (RFC 7427 4); none means classic signature methods only. */
function peerSignatureHashes(payloads: readonly Payload[]): number[] {
  const n = findNotify(payloads, N.SIGNATURE_HASH_ALGORITHMS);
  return n ? parseSignatureHashes(n.data) : [];
}

/** NAT detection over the SPIs of the message that carried the NAT-D payloads (SPIr is zero in a request). */
function natFrom(sa: IkeSa, payloads: readonly Payload[], spiR: Buffer): { local: boolean; remote: boolean } {
  return detectNat(
    sa.spiI,
    spiR,
    sa.local,
    sa.remote,
    notifies(payloads, N.NAT_DETECTION_SOURCE_IP).map((n) => n.data),
    notifies(payloads, N.NAT_DETECTION_DESTINATION_IP).map((n) => n.data),
  );
}

/**
 * A small copy that pins nothing: a view keeps its whole IKE_SA_INIT datagram
 * alive for the SA's lifetime, and a Buffer.from copy an 8 KiB pool slab.
 * Up to 64 bytes, a Buffer.alloc lives inside the JS heap.
 */
function compact(b: Buffer): Buffer {
  const c = Buffer.alloc(b.length);
  c.set(b);
  return c;
}

function establishKeys(sa: IkeSa, suite: IkeSuite, sharedSecret: Buffer): void {
  // SPIs and nonces the SA keeps (rekey collisions, checkpoints) may be views into the
  // peer's IKE_SA_INIT message: keep copies instead.
  sa.spiI = compact(sa.spiI);
  sa.spiR = compact(sa.spiR);
  sa.ni = compact(sa.ni);
  sa.nr = compact(sa.nr);
  sa.suite = suite;
  sa.keys = deriveIkeSaKeys({
    prf: suite.prf,
    encr: suite.encr.id,
    ...(suite.encr.keyLen !== undefined ? { keyLen: suite.encr.keyLen } : {}),
    ...(suite.integ !== undefined ? { integ: suite.integ } : {}),
    ni: sa.ni,
    nr: sa.nr,
    spiI: sa.spiI,
    spiR: sa.spiR,
    sharedSecret,
  });
  sharedSecret.fill(0);
  sa.protector = new MessageProtector(suite, sa.keys, sa.isInitiator, sa.env.random);
  sa.env.keylog?.('ikev2_decryption_table', keylogLine(sa));
}

/** A line of tshark's ikev2_decryption_table for this SA. */
export function keylogLine(sa: IkeSa): string {
  const k = sa.keys;
  const s = sa.suite;
  if (!k || !s) return '';
  const encrNames: Record<string, string> = {
    '12-128': 'AES-CBC-128 [RFC3602]',
    '12-192': 'AES-CBC-192 [RFC3602]',
    '12-256': 'AES-CBC-256 [RFC3602]',
    '20-128': 'AES-GCM-128 with 16 octet ICV [RFC5282]',
    '20-256': 'AES-GCM-256 with 16 octet ICV [RFC5282]',
    '28-undefined': 'ChaCha20-Poly1305 [RFC7634]',
  };
  const integNames: Record<number, string> = {
    2: 'HMAC_SHA1_96 [RFC2404]',
    12: 'HMAC_SHA2_256_128 [RFC4868]',
    13: 'HMAC_SHA2_384_192 [RFC4868]',
    14: 'HMAC_SHA2_512_256 [RFC4868]',
  };
  const encr = encrNames[`${s.encr.id}-${s.encr.keyLen}`] ?? `ENCR(${s.encr.id})`;
  const integ = s.integ === undefined ? 'NONE [RFC4306]' : (integNames[s.integ] ?? `INTEG(${s.integ})`);
  const hex = (b: Buffer) => b.toString('hex');
  return [
    hex(sa.spiI),
    hex(sa.spiR),
    hex(k.skEi),
    hex(k.skEr),
    `"${encr}"`,
    s.integ === undefined ? '' : hex(k.skAi),
    s.integ === undefined ? '' : hex(k.skAr),
    `"${integ}"`,
  ].join(',');
}

/** Initiator side of IKE_SA_INIT, with COOKIE and INVALID_KE_PAYLOAD retries. */
export class IkeInitTask implements InitiatorTask<Payload> {
  readonly name = 'ike-init';
  readonly fatalOnFailure = true;
  private group: number;
  private cookie: Buffer | undefined;
  private cookieRetries = 0;
  private keRetries = 0;

  constructor(
    private readonly sa: IkeSa,
    private readonly onFailed: (reason: string, code: string) => void,
  ) {
    const first = sa.peer?.ikeProposals[0]?.ke[0];
    if (first === undefined) throw new CoatiError('CONFIG', `peer ${sa.peerName}: no IKE proposal with a KE group`);
    this.group = first;
  }

  build(): OutboundMessage<Payload> {
    const sa = this.sa;
    if (sa.state === 'created') sa.transition('connecting', 'IKE_SA_INIT sent');
    sa.ke = createKeyExchange(this.group);
    if (sa.ni.length === 0) sa.ni = sa.env.random(NONCE_BYTES);
    const payloads: Payload[] = [];
    if (this.cookie) payloads.push(P.notify(N.COOKIE, this.cookie));
    payloads.push(
      P.sa(ikeSpecToWire(sa.peer?.ikeProposals ?? [])),
      P.ke(this.group, sa.ke.publicValue),
      P.nonce(sa.ni),
      ...initNotifies(sa, Buffer.alloc(8)),
    );
    return { exchange: EXCHANGE.IKE_SA_INIT, payloads };
  }

  onResponse(msg: InboundMessage<Payload>): TaskOutcome {
    const sa = this.sa;
    const cookie = findNotify(msg.payloads, N.COOKIE);
    if (cookie) {
      if (++this.cookieRetries > MAX_COOKIE_RETRIES) return this.fail('COOKIE', 'responder keeps demanding cookies');
      this.cookie = cookie.data;
      sa.env.emit({ type: 'cookie.received', peer: sa.peerName });
      return { kind: 'retry' };
    }
    const invalidKe = findNotify(msg.payloads, N.INVALID_KE_PAYLOAD);
    if (invalidKe) {
      const wanted = invalidKe.data.length === 2 ? invalidKe.data.readUInt16BE(0) : -1;
      const offered = sa.peer?.ikeProposals.some((p) => p.ke.includes(wanted)) ?? false;
      if (!offered || wanted === this.group || ++this.keRetries > MAX_KE_RETRIES) {
        return this.fail('INVALID_KE_PAYLOAD', `responder wants KE group ${wanted}, which we did not offer`);
      }
      this.group = wanted;
      return { kind: 'retry' };
    }
    const err = errorNotify(msg.payloads);
    if (err) return this.fail(notifyCode(err.notifyType), `IKE_SA_INIT refused: ${notifyCode(err.notifyType)}`);
    const saPayload = msg.payloads.find(isSa);
    const ke = msg.payloads.find(isKe);
    const nonce = msg.payloads.find(isNonce);
    if (!saPayload || !ke || !nonce) return this.fail('INVALID_SYNTAX', 'IKE_SA_INIT response lacks SA, KE or Nonce');
    const [answer] = saPayload.proposals;
    const suite =
      saPayload.proposals.length === 1 && answer ? acceptedIkeSuite(answer, sa.peer?.ikeProposals ?? []) : undefined;
    if (!suite) return this.fail('NO_PROPOSAL_CHOSEN', 'responder chose a proposal we did not offer');
    if (ke.group !== suite.ke || ke.group !== this.group)
      return this.fail('INVALID_KE_PAYLOAD', 'KE group does not match the proposal');
    if (nonce.data.length < 16 || nonce.data.length > 256) return this.fail('INVALID_SYNTAX', 'responder nonce length');
    if (!sa.pendingSpiR || sa.pendingSpiR.every((b) => b === 0))
      return this.fail('INVALID_SYNTAX', 'responder SPI is zero');
    sa.spiR = sa.pendingSpiR;
    sa.pendingSpiR = undefined;
    sa.nr = nonce.data;
    let shared: Buffer;
    try {
      shared = (sa.ke as NonNullable<typeof sa.ke>).computeShared(ke.data);
    } catch (err) {
      return this.fail('INVALID_KE_PAYLOAD', err instanceof Error ? err.message : String(err));
    }
    sa.ke = undefined;
    establishKeys(sa, suite, shared);
    sa.nat = natFrom(sa, msg.payloads, sa.spiR);
    sa.fragmentation = (sa.peer?.fragmentation ?? true) && !!findNotify(msg.payloads, N.IKEV2_FRAGMENTATION_SUPPORTED);
    if (sa.nat.local || sa.nat.remote) sa.floatToNatT();
    sa.peerSignatureHashes = peerSignatureHashes(msg.payloads);
    recordCertReq(sa, msg.payloads);
    return { kind: 'done' };
  }

  onAbort(): void {}

  private fail(code: string, message: string): TaskOutcome {
    this.sa.recordError(code, message);
    this.onFailed(message, code);
    return { kind: 'failed', reason: message };
  }
}

export function notifyCode(type: number): string {
  const entry = Object.entries(N).find(([, v]) => v === type);
  return entry ? entry[0] : `NOTIFY_${type}`;
}

/** What the manager does with an IKE_SA_INIT request before creating any state. */
export type InitVerdict =
  | { kind: 'accept'; suite: IkeSuite; num: number }
  | { kind: 'reject'; payloads: Payload[]; reason: string };

/** Stateless evaluation of an IKE_SA_INIT request (proposal and KE group). */
export function evaluateInitRequest(payloads: readonly Payload[], ours: readonly IkeProposalSpec[]): InitVerdict {
  const saPayload = payloads.find(isSa);
  const ke = payloads.find(isKe);
  const nonce = payloads.find(isNonce);
  if (!saPayload || !ke || !nonce) {
    return { kind: 'reject', payloads: [P.notify(N.INVALID_SYNTAX)], reason: 'missing SA, KE or Nonce' };
  }
  if (nonce.data.length < 16 || nonce.data.length > 256) {
    return { kind: 'reject', payloads: [P.notify(N.INVALID_SYNTAX)], reason: `nonce of ${nonce.data.length} bytes` };
  }
  const sel = selectIkeProposal(saPayload.proposals, ours);
  if (!sel) return { kind: 'reject', payloads: [P.notify(N.NO_PROPOSAL_CHOSEN)], reason: 'no acceptable IKE proposal' };
  if (ke.group !== sel.suite.ke) {
    // Is there an acceptable proposal with the group the initiator used? Prefer it.
    const withTheirGroup = selectIkeProposal(
      saPayload.proposals,
      ours.map((o) => ({ ...o, ke: o.ke.filter((g) => g === ke.group) })).filter((o) => o.ke.length > 0),
    );
    if (withTheirGroup) return { kind: 'accept', ...withTheirGroup };
    return {
      kind: 'reject',
      payloads: [P.notify(N.INVALID_KE_PAYLOAD, u16(sel.suite.ke))],
      reason: `KE group ${ke.group}, want ${sel.suite.ke}`,
    };
  }
  return { kind: 'accept', ...sel };
}

/** Responder side of IKE_SA_INIT, after `evaluateInitRequest` accepted it and the SA exists. */
export function respondIkeInit(sa: IkeSa, msg: InboundMessage<Payload>): OutboundMessage<Payload> {
  const known = sa.initVerdict;
  sa.initVerdict = undefined;
  const verdict =
    known && known.payloads === msg.payloads
      ? { kind: 'accept' as const, suite: known.suite, num: known.num }
      : evaluateInitRequest(msg.payloads, sa.responderProposals);
  if (verdict.kind === 'reject') return { exchange: EXCHANGE.IKE_SA_INIT, payloads: verdict.payloads };
  const ke = msg.payloads.find(isKe);
  const nonce = msg.payloads.find(isNonce);
  if (!ke || !nonce) return { exchange: EXCHANGE.IKE_SA_INIT, payloads: [P.notify(N.INVALID_SYNTAX)] };
  const ours = createKeyExchange(verdict.suite.ke);
  let shared: Buffer;
  try {
    shared = ours.computeShared(ke.data);
  } catch {
    return { exchange: EXCHANGE.IKE_SA_INIT, payloads: [P.notify(N.INVALID_SYNTAX)] };
  }
  sa.ni = nonce.data;
  sa.nr = sa.env.random(NONCE_BYTES);
  establishKeys(sa, verdict.suite, shared);
  sa.nat = natFrom(sa, msg.payloads, Buffer.alloc(8));
  sa.fragmentation = (sa.peer?.fragmentation ?? true) && !!findNotify(msg.payloads, N.IKEV2_FRAGMENTATION_SUPPORTED);
  sa.peerSignatureHashes = peerSignatureHashes(msg.payloads);
  sa.transition('connecting', 'IKE_SA_INIT answered');
  return {
    exchange: EXCHANGE.IKE_SA_INIT,
    payloads: [
      P.sa([ikeSuiteToWire(verdict.suite, verdict.num)]),
      P.ke(verdict.suite.ke, ours.publicValue),
      P.nonce(sa.nr),
      ...responderCertReq(sa),
      ...initNotifies(sa, sa.spiR),
    ],
  };
}
