/**
 * Main Mode (RFC 2409 5, identity protection): six messages, both roles.
 * MM1/MM2 negotiate the suite, MM3/MM4 exchange KE, nonces and NAT-D
 * (RFC 3947), MM5/MM6 carry the encrypted identities and authentication.
 * The responder learns which PSK applies only from MM5 (the identity is
 * encrypted): it tries the candidate keys of peers that may be behind the
 * source address (address matches first), so NATed peers authenticate too.
 */
import { createKeyExchange } from '../crypto/dh.js';
import type { Endpoint } from '../ikev2/env.js';
import type { Identity } from '../sa/identity.js';
import type { PeerPolicy } from '../sa/policy.js';
import {
  checkV1Rules,
  type IdV1Payload,
  type IsakmpHeader,
  type IsakmpMessage,
  type KeV1Payload,
  MAIN_MODE,
  type NonceV1Payload,
  type SaV1Payload,
  V1ExchangeType,
  V1NotifyType,
  type V1Payload,
  V1PayloadType,
} from '../wire/ikev1/index.js';
import { identityOf } from './ids.js';
import { type IsakmpSa, identityKey, type Opened, type PskGroup } from './isakmp-sa.js';
import {
  authOf,
  authPayloads,
  certRequests,
  deriveKeys,
  detectNat,
  emitKeylog,
  errorNotify,
  hasInitialContact,
  initialContact,
  NONCE_BYTES,
  natdPayloads,
  noteVendorIds,
  payloadBody,
  rawPayloadBody,
  setSuite,
  vendorPayloads,
  verifyPeerAuth,
} from './phase1-common.js';
import { acceptPhase1Answer, authMethodFor, phase1Offer, SIGNATURE_METHODS, selectPhase1 } from './proposals.js';

const find = <T extends V1Payload['type']>(ps: readonly V1Payload[], t: T) =>
  ps.find((p) => p.type === t) as Extract<V1Payload, { type: T }> | undefined;

export function failPhase1(sa: IsakmpSa, code: string, reason: string): void {
  sa.recordError(code, reason);
  sa.host.onFailure(sa, reason, 'establish');
}

/** Completes phase 1 on either side. */
export function phase1Done(sa: IsakmpSa, peerSentInitialContact: boolean): void {
  if (sa.state === 'connecting') sa.transition('authenticating', 'peer authenticated');
  sa.enterEstablished();
  sa.host.onEstablished(sa, peerSentInitialContact);
}

export function startMainMode(sa: IsakmpSa): void {
  const peer = sa.peer as PeerPolicy;
  const offer = phase1Offer(peer.ikeProposals, authMethodFor(peer.auth), peer.ikeLifetimeMs);
  if (!offer.proposals[0]?.transforms.length) {
    failPhase1(sa, 'NO_PROPOSAL_CHOSEN', 'no IKEv1-capable proposal configured (AES-CBC + SHA1/SHA2 + DH)');
    return;
  }
  sa.hs.offer = offer;
  sa.hs.saiB = payloadBody(offer);
  sa.hs.step = 1;
  sa.transition('connecting', 'Main Mode 1 sent');
  sa.transmit(0, sa.sealPlain(MAIN_MODE, 0, [offer, ...vendorPayloads()]), 'main-mode', true);
}

/** Responder: MM1 arrived on a fresh SA (cookies assigned by the manager). */
export function respondMainMode1(
  sa: IsakmpSa,
  raw: Buffer,
  msg: Extract<IsakmpMessage, { payloads: V1Payload[] }>,
  methods: readonly number[],
  lifetimeMs: number,
): void {
  const rules = checkV1Rules(MAIN_MODE, 1, msg.payloads, { encrypted: false });
  if (!rules.ok) return refuse(sa, rules.notify, `MM1: ${rules.reason}`);
  const offer = find(msg.payloads, V1PayloadType.SA) as SaV1Payload;
  const sel = selectPhase1(offer, sa.hs.specs ?? [], methods, lifetimeMs);
  if (!sel) return refuse(sa, V1NotifyType.NO_PROPOSAL_CHOSEN, 'MM1: no acceptable proposal');
  noteVendorIds(sa, msg.payloads);
  setSuite(sa, sel.suite);
  sa.hs.saiB = rawPayloadBody(raw, msg.header.nextPayload, V1PayloadType.SA) ?? payloadBody(offer);
  sa.hs.step = 2;
  sa.transition('connecting', 'Main Mode 1 answered');
  const answer: SaV1Payload = { ...offer, proposals: [{ ...sel.proposal, transforms: [sel.transform] }] };
  sa.received(0, raw);
  sa.transmit(0, sa.sealPlain(MAIN_MODE, 0, [answer, ...vendorPayloads()]), 'main-mode', false);
}

/** An unprotected error notify, then the SA goes (nothing was agreed). */
function refuse(sa: IsakmpSa, notify: number, reason: string): void {
  sa.sendRaw(sa.sealPlain(V1ExchangeType.INFORMATIONAL, 0, [errorNotify(notify)]));
  sa.env.emit({
    type: 'handshake.failed',
    version: 1,
    peer: sa.peerName,
    role: 'responder',
    reason: notify === V1NotifyType.NO_PROPOSAL_CHOSEN ? 'NO_PROPOSAL_CHOSEN' : 'INVALID_SYNTAX',
    detail: reason,
  });
  void sa.queue.run(() => sa.destroy(reason));
}

/** Every Main Mode message after MM1 (either role). */
export async function onMainMode(sa: IsakmpSa, raw: Buffer, msg: IsakmpMessage, from: Endpoint, to: Endpoint) {
  const h = msg.header;
  if (msg.payloads) {
    const step = (sa.hs.step ?? 0) + 1;
    const rules = checkV1Rules(MAIN_MODE, step, msg.payloads, { encrypted: false });
    if (!rules.ok) return sa.drop(`MM${step}: ${rules.reason}`, from);
    if (sa.isInitiator && step === 2) return mm2(sa, raw, h, msg.payloads);
    if (!sa.isInitiator && step === 3) return mm3(sa, raw, msg.payloads, from, to);
    if (sa.isInitiator && step === 4) return mm4(sa, raw, msg.payloads, from, to);
    return sa.drop(`unexpected plain Main Mode message in step ${sa.hs.step}`, from);
  }
  if (!sa.isInitiator && sa.hs.step === 4) return mm5(sa, raw, h, msg.encrypted, from, to);
  if (sa.isInitiator && sa.hs.step === 5) {
    const opened = sa.open(h, msg.encrypted);
    if ('error' in opened) return sa.drop(`MM6: ${opened.error}`, from);
    return mm6(sa, raw, h, opened, from);
  }
  return sa.drop(`unexpected encrypted Main Mode message in step ${sa.hs.step}`, from);
}

function mm2(sa: IsakmpSa, raw: Buffer, h: IsakmpHeader, payloads: V1Payload[]): void {
  const peer = sa.peer as PeerPolicy;
  const answer = find(payloads, V1PayloadType.SA) as SaV1Payload;
  const suite = acceptPhase1Answer(sa.hs.offer as SaV1Payload, answer, peer.ikeLifetimeMs);
  if (!suite) return failPhase1(sa, 'NO_PROPOSAL_CHOSEN', 'MM2: responder chose a transform we did not offer');
  sa.received(0, raw);
  sa.cookieR = Buffer.from(h.responderCookie);
  sa.host.onCookies(sa);
  noteVendorIds(sa, payloads);
  setSuite(sa, suite);
  const ke = createKeyExchange(suite.group);
  sa.hs.ke = ke;
  sa.hs.gxi = ke.publicValue;
  sa.hs.ni = sa.env.random(NONCE_BYTES);
  sa.hs.step = 3;
  const out: V1Payload[] = [
    { type: V1PayloadType.KE, data: ke.publicValue },
    { type: V1PayloadType.NONCE, data: sa.hs.ni },
    ...natdPayloads(sa),
    ...certRequests([peer]),
  ];
  sa.transmit(0, sa.sealPlain(MAIN_MODE, 0, out), 'main-mode', true);
}

function mm3(sa: IsakmpSa, raw: Buffer, payloads: V1Payload[], from: Endpoint, to: Endpoint): void {
  const ke = createKeyExchange((sa.suite as { group: number }).group);
  const gxi = (find(payloads, V1PayloadType.KE) as KeV1Payload).data;
  try {
    sa.hs.shared = ke.computeShared(gxi);
  } catch (err) {
    return sa.drop(`MM3: ${err instanceof Error ? err.message : String(err)}`, from);
  }
  sa.received(0, raw);
  sa.hs.gxi = Buffer.from(gxi);
  sa.hs.gxr = ke.publicValue;
  sa.hs.ni = Buffer.from((find(payloads, V1PayloadType.NONCE) as NonceV1Payload).data);
  sa.hs.nr = sa.env.random(NONCE_BYTES);
  detectNat(sa, payloads, from, to);
  sa.hs.step = 4;
  const out: V1Payload[] = [
    { type: V1PayloadType.KE, data: ke.publicValue },
    { type: V1PayloadType.NONCE, data: sa.hs.nr },
    ...natdPayloads(sa),
    ...(SIGNATURE_METHODS.includes(sa.suite?.authMethod ?? 0) ? certRequests(sa.host.candidatesFor(from)) : []),
  ];
  sa.transmit(0, sa.sealPlain(MAIN_MODE, 0, out), 'main-mode', false);
}

function mm4(sa: IsakmpSa, raw: Buffer, payloads: V1Payload[], from: Endpoint, to: Endpoint): void {
  const peer = sa.peer as PeerPolicy;
  const gxr = (find(payloads, V1PayloadType.KE) as KeV1Payload).data;
  try {
    sa.hs.shared = sa.hs.ke?.computeShared(gxr);
  } catch (err) {
    return sa.drop(`MM4: ${err instanceof Error ? err.message : String(err)}`, from);
  }
  sa.received(0, raw);
  sa.hs.gxr = Buffer.from(gxr);
  sa.hs.nr = Buffer.from((find(payloads, V1PayloadType.NONCE) as NonceV1Payload).data);
  detectNat(sa, payloads, from, to);
  deriveKeys(sa, authOf(peer));
  emitKeylog(sa);
  if (sa.nat.local || sa.nat.remote) sa.floatToNatT();
  const { id, rest } = authPayloads(sa, peer);
  const out: V1Payload[] = [id, ...rest];
  if (sa.host.wantsInitialContact(peer)) {
    out.push(initialContact(sa));
    sa.initialContactSent = true;
  }
  sa.hs.step = 5;
  sa.transition('authenticating', 'Main Mode 5 sent');
  sa.transmit(0, sa.seal(MAIN_MODE, 0, out), 'main-mode', true);
}

/** Responder MM5: find the key that decrypts and authenticates it. */
function mm5(sa: IsakmpSa, raw: Buffer, h: IsakmpHeader, body: Buffer, from: Endpoint, to: Endpoint): void {
  const method = sa.suite?.authMethod ?? 0;
  const signature = SIGNATURE_METHODS.includes(method);
  const groups = !signature && sa.host.pskGroupsFor ? sa.host.pskGroupsFor(from) : undefined;
  const outcome = groups ? mm5Psk(sa, h, body, groups) : mm5Scan(sa, h, body, from, method, signature);
  if (outcome.ok) return mm5Accepted(sa, raw, outcome.peer, outcome.id, outcome.opened, from, to);
  const lastReason = outcome.reason;
  sa.recordError('AUTHENTICATION_FAILED', lastReason);
  sa.env.emit({
    type: 'handshake.failed',
    version: 1,
    peer: sa.peerName,
    role: 'responder',
    reason: 'AUTHENTICATION_FAILED',
    detail: lastReason,
  });
  void sa.queue.run(() => sa.destroy(lastReason));
}

type Mm5Outcome = { ok: true; peer: PeerPolicy; id: Identity; opened: Opened } | { ok: false; reason: string };

/**
 * PSK: one key derivation per distinct key; the presented identity is decoded once and
 * looked up among the peers sharing the key that decrypted it (no scan over candidates).
 */
function mm5Psk(sa: IsakmpSa, h: IsakmpHeader, body: Buffer, groups: readonly PskGroup[]): Mm5Outcome {
  let reason = 'MM5: no pre-shared-key peer for this source';
  for (const g of groups) {
    deriveKeys(sa, authOf(g.first));
    const opened = sa.open(h, body);
    if ('error' in opened) {
      reason = `MM5: ${opened.error}`;
      continue;
    }
    const rules = checkV1Rules(MAIN_MODE, 5, opened.payloads, { encrypted: true });
    const idp = rules.ok ? opened.payloads.find((p): p is IdV1Payload => p.type === V1PayloadType.ID) : undefined;
    const id = idp ? identityOf(idp) : undefined;
    const owners = id ? g.byId.get(identityKey(id)) : undefined;
    for (const owner of owners ?? []) {
      const v = verifyPeerAuth(sa, owner, opened.payloads, true);
      if (v.ok) return { ok: true, peer: owner, id: v.id, opened };
      reason = `MM5: ${v.reason}`;
    }
    if (!rules.ok) reason = `MM5: ${rules.reason}`;
    else if (!id) reason = 'MM5: missing or unsupported ID';
    else if (!owners) reason = `MM5: no peer with ID ${id.text} uses this pre-shared key`;
    if (opened.fresh) sa.reject(0);
  }
  return { ok: false, reason };
}

/** Signatures (or a host without the PSK index): every candidate for the source and method. */
function mm5Scan(
  sa: IsakmpSa,
  h: IsakmpHeader,
  body: Buffer,
  from: Endpoint,
  method: number,
  signature: boolean,
): Mm5Outcome {
  const candidates = sa.host
    .candidatesFor(from)
    .filter((p) => authMethodFor(p.auth) === method || (signature && p.auth.kind === 'pubkey'));
  const tried = new Set<string>();
  let lastReason = 'no candidate peer for this source and method';
  for (const peer of candidates) {
    const keyTag = peer.auth.kind === 'psk' ? peer.auth.secret.toString('hex') : 'signature';
    if (!tried.has(keyTag)) {
      tried.add(keyTag);
      deriveKeys(sa, authOf(peer));
    } else if (peer.auth.kind === 'psk') {
      continue; // same key, different identity: covered by the pass that derived it
    }
    const opened = sa.open(h, body);
    if ('error' in opened) {
      lastReason = `MM5: ${opened.error}`;
      continue;
    }
    const rules = checkV1Rules(MAIN_MODE, 5, opened.payloads, { encrypted: true });
    if (!rules.ok) {
      if (opened.fresh) sa.reject(0);
      lastReason = `MM5: ${rules.reason}`;
      continue;
    }
    // Any candidate sharing this key may own the identity.
    const owners = candidates.filter((c) =>
      peer.auth.kind === 'psk'
        ? c.auth.kind === 'psk' && c.auth.secret.equals(peer.auth.secret)
        : c.auth.kind === 'pubkey',
    );
    for (const owner of owners) {
      const v = verifyPeerAuth(sa, owner, opened.payloads, true);
      if (!v.ok) {
        lastReason = `MM5: ${v.reason}`;
        continue;
      }
      return { ok: true, peer: owner, id: v.id, opened };
    }
    if (opened.fresh) sa.reject(0);
  }
  return { ok: false, reason: lastReason };
}

function mm5Accepted(
  sa: IsakmpSa,
  raw: Buffer,
  peer: PeerPolicy,
  id: Identity,
  opened: Opened,
  from: Endpoint,
  to: Endpoint,
): void {
  sa.peer = peer;
  sa.remoteId = id;
  emitKeylog(sa);
  if (to.port === 4500) {
    sa.local = { ...sa.local, port: 4500 };
    sa.remote = { ...from };
  }
  sa.received(0, raw);
  const { id: ours, rest } = authPayloads(sa, peer);
  const out: V1Payload[] = [ours, ...rest];
  if (sa.host.wantsInitialContact(peer)) {
    out.push(initialContact(sa));
    sa.initialContactSent = true;
  }
  sa.hs.step = 6;
  sa.transmit(0, sa.seal(MAIN_MODE, 0, out), 'main-mode', false);
  phase1Done(sa, hasInitialContact(opened.payloads));
}

function mm6(sa: IsakmpSa, raw: Buffer, h: IsakmpHeader, opened: Opened, from: Endpoint): void {
  const rules = checkV1Rules(MAIN_MODE, 6, opened.payloads, { encrypted: true });
  const verdict = rules.ok ? verifyPeerAuth(sa, sa.peer as PeerPolicy, opened.payloads, false) : undefined;
  if (!rules.ok || !verdict?.ok) {
    if (opened.fresh) sa.reject(h.messageId);
    const reason = !rules.ok ? rules.reason : verdict && !verdict.ok ? verdict.reason : 'invalid';
    sa.drop(`MM6: ${reason}`, from);
    if (rules.ok) failPhase1(sa, 'AUTHENTICATION_FAILED', `MM6: ${reason}`);
    return;
  }
  sa.received(0, raw);
  sa.remoteId = verdict.id;
  sa.hs.step = 6;
  phase1Done(sa, hasInitialContact(opened.payloads));
}
