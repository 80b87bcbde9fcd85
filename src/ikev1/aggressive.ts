/**
 * Aggressive Mode with a pre-shared key (RFC 2409 5): three messages, the
 * identities in the clear. Off unless the peer policy sets `aggressive`; the
 * responder finds the PSK by the initiator's ID, so the offer carries one DH
 * group only (the KE payload's). AM3 travels encrypted.
 */
import { createKeyExchange } from '../crypto/dh.js';
import type { Endpoint } from '../ikev2/env.js';
import { localIdentity } from '../ikev2/exchanges/auth-pubkey.js';
import type { PeerPolicy } from '../sa/policy.js';
import {
  checkV1Rules,
  type IdV1Payload,
  type IsakmpMessage,
  type KeV1Payload,
  type NonceV1Payload,
  type SaV1Payload,
  V1ExchangeType,
  type V1Payload,
  V1PayloadType,
} from '../wire/ikev1/index.js';
import { idBody, identityOf, identityPayload } from './ids.js';
import type { IsakmpSa } from './isakmp-sa.js';
import { failPhase1, phase1Done } from './main-mode.js';
import {
  authOf,
  authPayloads,
  deriveKeys,
  detectNat,
  emitKeylog,
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
import { acceptPhase1Answer, authMethodFor, phase1Offer, selectPhase1 } from './proposals.js';

const AM = V1ExchangeType.AGGRESSIVE;
const find = <T extends V1Payload['type']>(ps: readonly V1Payload[], t: T) =>
  ps.find((p) => p.type === t) as Extract<V1Payload, { type: T }> | undefined;

export function startAggressive(sa: IsakmpSa): void {
  const peer = sa.peer as PeerPolicy;
  sa.mode = 'aggressive';
  const group = peer.ikeProposals[0]?.ke[0];
  if (group === undefined) return failPhase1(sa, 'NO_PROPOSAL_CHOSEN', 'no DH group configured');
  const specs = peer.ikeProposals.filter((s) => s.ke.includes(group)).map((s) => ({ ...s, ke: [group] }));
  const offer = phase1Offer(specs, authMethodFor(peer.auth), peer.ikeLifetimeMs);
  const ke = createKeyExchange(group);
  const id = identityPayload(localIdentity(peer));
  sa.hs = {
    offer,
    saiB: payloadBody(offer),
    ke,
    gxi: ke.publicValue,
    ni: sa.env.random(NONCE_BYTES),
    idiB: idBody(id),
    step: 1,
  };
  sa.transition('connecting', 'Aggressive Mode 1 sent');
  const out: V1Payload[] = [
    offer,
    { type: V1PayloadType.KE, data: ke.publicValue },
    { type: V1PayloadType.NONCE, data: sa.hs.ni as Buffer },
    id,
    ...vendorPayloads(),
  ];
  sa.transmit(0, sa.sealPlain(AM, 0, out), 'aggressive-mode', true);
}

/** Responder: AM1 on a fresh SA. */
export function respondAggressive1(sa: IsakmpSa, raw: Buffer, msg: IsakmpMessage, from: Endpoint, to: Endpoint): void {
  sa.mode = 'aggressive';
  const payloads = msg.payloads ?? [];
  const fail = (reason: string) => {
    sa.env.emit({
      type: 'handshake.failed',
      version: 1,
      peer: sa.peerName,
      role: 'responder',
      reason: 'AUTHENTICATION_FAILED',
      detail: reason,
    });
    void sa.queue.run(() => sa.destroy(reason));
  };
  const rules = checkV1Rules(AM, 1, payloads, { encrypted: false });
  if (!rules.ok) return fail(`AM1: ${rules.reason}`);
  const idp = find(payloads, V1PayloadType.ID) as IdV1Payload;
  const id = identityOf(idp);
  const peer = id ? sa.host.peerById(id, from) : undefined;
  if (!peer?.aggressive || peer.auth.kind !== 'psk') return fail('AM1: no peer with Aggressive Mode PSK for this ID');
  const offer = find(payloads, V1PayloadType.SA) as SaV1Payload;
  const sel = selectPhase1(offer, peer.ikeProposals, [authMethodFor(peer.auth)], peer.ikeLifetimeMs);
  if (!sel) return fail('AM1: no acceptable proposal');
  setSuite(sa, sel.suite);
  const ke = createKeyExchange(sel.suite.group);
  const gxi = (find(payloads, V1PayloadType.KE) as KeV1Payload).data;
  let shared: Buffer;
  try {
    shared = ke.computeShared(gxi);
  } catch (err) {
    return fail(`AM1: ${String(err)}`);
  }
  noteVendorIds(sa, payloads);
  sa.peer = peer;
  sa.remoteId = id;
  sa.hs = {
    saiB: rawPayloadBody(raw, msg.header.nextPayload, V1PayloadType.SA) ?? payloadBody(offer),
    gxi: Buffer.from(gxi),
    gxr: ke.publicValue,
    ni: Buffer.from((find(payloads, V1PayloadType.NONCE) as NonceV1Payload).data),
    nr: sa.env.random(NONCE_BYTES),
    shared,
    idiB: idBody(idp),
    step: 2,
  };
  deriveKeys(sa, authOf(peer));
  emitKeylog(sa);
  sa.received(0, raw);
  sa.transition('connecting', 'Aggressive Mode 1 answered');
  const { id: ours, rest } = authPayloads(sa, peer);
  const answer: SaV1Payload = { ...offer, proposals: [{ ...sel.proposal, transforms: [sel.transform] }] };
  const out: V1Payload[] = [
    answer,
    { type: V1PayloadType.KE, data: ke.publicValue },
    { type: V1PayloadType.NONCE, data: sa.hs.nr as Buffer },
    ours,
    ...rest,
    ...natdPayloads(sa),
    ...vendorPayloads(),
  ];
  void to;
  sa.transmit(0, sa.sealPlain(AM, 0, out), 'aggressive-mode', true);
}

/** AM2 (initiator) and AM3 (responder). */
export async function onAggressive(sa: IsakmpSa, raw: Buffer, msg: IsakmpMessage, from: Endpoint, to: Endpoint) {
  if (sa.isInitiator && sa.hs.step === 1 && msg.payloads)
    return am2(sa, raw, msg.payloads, msg.header.responderCookie, from, to);
  if (!sa.isInitiator && sa.hs.step === 2) {
    let payloads: V1Payload[];
    let fresh = false;
    if (msg.encrypted) {
      const opened = sa.open(msg.header, msg.encrypted);
      if ('error' in opened) return sa.drop(`AM3: ${opened.error}`, from);
      payloads = opened.payloads;
      fresh = opened.fresh;
    } else payloads = msg.payloads;
    const rules = checkV1Rules(AM, 3, payloads, { encrypted: !!msg.encrypted });
    const v = rules.ok
      ? verifyPeerAuth(sa, sa.peer as PeerPolicy, [identityPayloadOf(sa), ...payloads], true)
      : undefined;
    if (!rules.ok || !v?.ok) {
      if (fresh) sa.reject(0);
      return sa.drop(`AM3: ${!rules.ok ? rules.reason : v && !v.ok ? v.reason : 'invalid'}`, from);
    }
    sa.received(0, raw);
    sa.finish(0);
    detectNat(sa, payloads, from, to);
    if (to.port === 4500) {
      sa.local = { ...sa.local, port: 4500 };
      sa.remote = { ...from };
    }
    sa.hs.step = 3;
    return phase1Done(sa, hasInitialContact(payloads));
  }
  return sa.drop(`unexpected Aggressive Mode message in step ${sa.hs.step}`, from);
}

/** The initiator's ID as it was in AM1 (HASH_I covers it; AM3 does not repeat it). */
function identityPayloadOf(sa: IsakmpSa): IdV1Payload {
  const b = sa.hs.idiB as Buffer;
  return {
    type: V1PayloadType.ID,
    idType: b[0] ?? 0,
    protocolId: b[1] ?? 0,
    port: b.readUInt16BE(2),
    data: b.subarray(4),
  };
}

function am2(sa: IsakmpSa, raw: Buffer, payloads: V1Payload[], cookieR: Buffer, from: Endpoint, to: Endpoint): void {
  const peer = sa.peer as PeerPolicy;
  const rules = checkV1Rules(AM, 2, payloads, { encrypted: false });
  if (!rules.ok) return sa.drop(`AM2: ${rules.reason}`, from);
  const suite = acceptPhase1Answer(
    sa.hs.offer as SaV1Payload,
    find(payloads, V1PayloadType.SA) as SaV1Payload,
    peer.ikeLifetimeMs,
  );
  if (!suite) return failPhase1(sa, 'NO_PROPOSAL_CHOSEN', 'AM2: responder chose a transform we did not offer');
  const gxr = (find(payloads, V1PayloadType.KE) as KeV1Payload).data;
  try {
    sa.hs.shared = sa.hs.ke?.computeShared(gxr);
  } catch (err) {
    return sa.drop(`AM2: ${String(err)}`, from);
  }
  sa.cookieR = Buffer.from(cookieR);
  setSuite(sa, suite);
  noteVendorIds(sa, payloads);
  sa.hs.gxr = Buffer.from(gxr);
  sa.hs.nr = Buffer.from((find(payloads, V1PayloadType.NONCE) as NonceV1Payload).data);
  deriveKeys(sa, authOf(peer));
  const v = verifyPeerAuth(sa, peer, payloads, false);
  if (!v.ok) return failPhase1(sa, 'AUTHENTICATION_FAILED', `AM2: ${v.reason}`);
  sa.host.onCookies(sa);
  emitKeylog(sa);
  sa.received(0, raw);
  sa.remoteId = v.id;
  detectNat(sa, payloads, from, to);
  if (sa.nat.local || sa.nat.remote) sa.floatToNatT();
  const { rest } = authPayloads(sa, peer);
  const out: V1Payload[] = [...rest, ...natdPayloads(sa)];
  if (sa.host.wantsInitialContact(peer)) {
    out.push(initialContact(sa));
    sa.initialContactSent = true;
  }
  sa.hs.step = 3;
  sa.transmit(0, sa.seal(AM, 0, out), 'aggressive-mode', false);
  phase1Done(sa, false);
}
