/**
 * Quick Mode (RFC 2409 5.5): one IPsec SA pair per exchange, with or without
 * PFS, tunnel or transport, UDP-encapsulated under NAT (RFC 3947 5) with
 * NAT-OA in transport mode, client IDs for subnets and hosts, and
 * RESPONDER-LIFETIME (RFC 2407 4.6.3.1). Rekeys are make-before-break: the new
 * pair is installed before the initiator deletes the old one.
 */
import { createKeyExchange, type KeyExchange } from '../crypto/dh.js';
import { hashesEqual, quickModeHash1, quickModeHash2, quickModeHash3, quickModeKeymat } from '../crypto/ikev1/index.js';
import { DirectionKeys } from '../crypto/ikev2/keys.js';
import { encrKeyMaterialSize, integKeyMaterialSize } from '../crypto/transforms.js';
import {
  type ChildSa,
  holdChildPolicies,
  inboundSaSpec,
  installChild,
  outboundSaSpec,
  spiHex,
} from '../ikev2/child-sa.js';
import type { ChildPolicy, PeerPolicy } from '../sa/policy.js';
import { contains, natSubstitute, type TrafficSelector } from '../sa/traffic-selector.js';
import { withJitter } from '../util/clock.js';
import { bytesToIp, ipToBytes } from '../util/ip.js';
import {
  checkV1Rules,
  encodeV1PayloadChain,
  type IdV1Payload,
  type IsakmpHeader,
  type NotifyV1Payload,
  type SaV1Payload,
  V1Doi,
  V1ExchangeType,
  V1IdType,
  V1LifeType,
  V1NotifyType,
  V1P2Attr,
  type V1Payload,
  V1PayloadType,
  V1ProtocolId,
} from '../wire/ikev1/index.js';
import { idSelector, selectorId } from './ids.js';
import { sendInformational, sendNotify } from './informational.js';
import type { IsakmpSa, Opened } from './isakmp-sa.js';
import { NONCE_BYTES } from './phase1-common.js';
import { acceptPhase2Answer, answerSa, type Phase2Choice, phase2Offer, selectPhase2 } from './proposals.js';

const QM = V1ExchangeType.QUICK_MODE;

interface QuickState {
  role: 'initiator' | 'responder';
  policy: ChildPolicy;
  reqid: number;
  spiIn: number;
  ni: Buffer;
  nr?: Buffer;
  ke?: KeyExchange;
  shared?: Buffer;
  offer?: SaV1Payload;
  choice?: Phase2Choice;
  peerSpi?: number;
  /** Transport mode under NAT: the peer's original address from its NAT-OA (RFC 3947 5.2). */
  peerOa?: string;
  localTs: TrafficSelector;
  remoteTs: TrafficSelector;
  /** IDci/IDcr as sent by the initiator, when it sent them. */
  ids?: [IdV1Payload, IdV1Payload];
  lifetimeMs: number;
  rekeyOf?: ChildSa;
  onDone?: (ok: boolean, reason: string) => void;
  /** The pair built before our last message (responder: QM2, initiator: QM3); its inbound SA is keyed in the kernel. */
  early?: ChildSa;
  /** Responder: when the peer's QM1 arrived (the pairs it knew of when it started are older). */
  startedAt?: number;
}

const pending = new WeakMap<IsakmpSa, Map<number, QuickState>>();
function table(sa: IsakmpSa): Map<number, QuickState> {
  let t = pending.get(sa);
  if (!t) {
    t = new Map();
    pending.set(sa, t);
  }
  return t;
}

export function quickModePending(sa: IsakmpSa, mid: number): boolean {
  return table(sa).has(mid);
}

/** Quick Modes under this ISAKMP SA that started but have not installed or failed yet. */
export function quickModesInFlight(sa: IsakmpSa): number {
  return sa.state === 'destroyed' ? 0 : table(sa).size;
}

/** Whether a Quick Mode we initiated for `child` is under way under this ISAKMP SA. */
export function initiatingQuickMode(sa: IsakmpSa, child: string): boolean {
  if (sa.state === 'destroyed') return false;
  for (const st of table(sa).values()) if (st.role === 'initiator' && st.policy.name === child) return true;
  return false;
}

function hashPayload(data: Buffer): V1Payload {
  return { type: V1PayloadType.HASH, data };
}

function natOa(addr: string): V1Payload {
  const bytes = ipToBytes(addr);
  return {
    type: V1PayloadType.NAT_OA,
    idType: bytes.length === 4 ? V1IdType.IPV4_ADDR : V1IdType.IPV6_ADDR,
    addr: bytes,
  };
}

/**
 * The peer's original address from the NAT-OA payloads of its Quick Mode message: the
 * initiator sends its own address first (NAT-OAi), the responder its own last (NAT-OAr).
 * A draft-era peer that sends only its own address is covered by either end.
 */
function peerOriginalAddress(payloads: readonly V1Payload[], which: 'first' | 'last'): string | undefined {
  const oas = payloads.filter((p) => p.type === V1PayloadType.NAT_OA || p.type === V1PayloadType.NAT_OA_DRAFT);
  const p = which === 'first' ? oas[0] : oas[oas.length - 1];
  return p && 'addr' in p ? bytesToIp(p.addr) : undefined;
}

/** RESPONDER-LIFETIME data: an attribute list with the seconds we accept. */
function lifetimeNotify(spi: number, seconds: number): NotifyV1Payload {
  const data = Buffer.alloc(12);
  data.writeUInt16BE(0x8000 | V1P2Attr.SA_LIFE_TYPE, 0);
  data.writeUInt16BE(V1LifeType.SECONDS, 2);
  data.writeUInt16BE(V1P2Attr.SA_LIFE_DURATION, 4);
  data.writeUInt16BE(4, 6);
  data.writeUInt32BE(seconds >>> 0, 8);
  const s = Buffer.alloc(4);
  s.writeUInt32BE(spi >>> 0);
  return {
    type: V1PayloadType.N,
    doi: V1Doi.IPSEC,
    protocolId: V1ProtocolId.IPSEC_ESP,
    spi: s,
    notifyType: V1NotifyType.RESPONDER_LIFETIME,
    data,
  };
}

function responderLifetimeMs(payloads: readonly V1Payload[]): number | undefined {
  for (const p of payloads) {
    if (p.type !== V1PayloadType.N || p.notifyType !== V1NotifyType.RESPONDER_LIFETIME) continue;
    const d = p.data;
    for (let off = 0; off + 4 <= d.length; ) {
      const word = d.readUInt16BE(off);
      const type = word & 0x7fff;
      if (word & 0x8000) {
        off += 4;
        continue;
      }
      const len = d.readUInt16BE(off + 2);
      if (type === V1P2Attr.SA_LIFE_DURATION && len === 4 && off + 8 <= d.length) return d.readUInt32BE(off + 4) * 1000;
      off += 4 + len;
    }
  }
  return undefined;
}

/** Starts a Quick Mode for a configured child (first SA or rekey of `rekeyOf`). */
export async function startQuickMode(
  sa: IsakmpSa,
  policy: ChildPolicy,
  rekeyOf?: ChildSa,
  onDone?: (ok: boolean, reason: string) => void,
): Promise<void> {
  const peer = sa.peer as PeerPolicy;
  if (!sa.isUp) return onDone?.(false, 'ISAKMP SA not established');
  const reqid = rekeyOf?.reqid ?? sa.host.reqidFor(peer.name, policy.name);
  let spiIn: number;
  try {
    spiIn = await sa.env.kernel.allocSpi({ src: sa.remote.addr, dst: sa.local.addr, proto: 'esp', reqid });
  } catch (err) {
    sa.env.emit({ type: 'kernel.error', version: 1, peer: sa.peerName, op: 'allocspi', message: String(err) });
    return onDone?.(false, 'SPI allocation failed');
  }
  // The ISAKMP SA went while the kernel allocated: nothing would ever release the SPI.
  if (!sa.isUp) {
    await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: spiIn, proto: 'esp' }).catch(() => {});
    return onDone?.(false, 'ISAKMP SA gone');
  }
  const udp = sa.nat.local || sa.nat.remote;
  const offer = phase2Offer(policy.espProposals, spiIn, policy.mode, udp, policy.lifetimeMs);
  const localTs = rekeyOf?.localTs[0] ?? (policy.localTs[0] as TrafficSelector);
  const remoteTs = rekeyOf?.remoteTs[0] ?? (policy.remoteTs[0] as TrafficSelector);
  const st: QuickState = {
    role: 'initiator',
    policy,
    reqid,
    spiIn,
    ni: sa.env.random(NONCE_BYTES),
    offer: offer.sa,
    localTs,
    remoteTs,
    ids: [selectorId(localTs), selectorId(remoteTs)],
    lifetimeMs: policy.lifetimeMs,
    ...(rekeyOf ? { rekeyOf } : {}),
    ...(onDone ? { onDone } : {}),
  };
  if (offer.pfsGroup !== undefined) st.ke = createKeyExchange(offer.pfsGroup);
  const rest: V1Payload[] = [offer.sa, { type: V1PayloadType.NONCE, data: st.ni }];
  if (st.ke) rest.push({ type: V1PayloadType.KE, data: st.ke.publicValue });
  rest.push(...(st.ids as IdV1Payload[]));
  if (udp && policy.mode === 'transport') rest.push(natOa(sa.local.addr), natOa(sa.remote.addr));
  const mid = sa.newMessageId();
  const h1 = quickModeHash1(sa.prf!, sa.keys!.skeyidA, mid, encodeV1PayloadChain(rest).bytes);
  table(sa).set(mid, st);
  sa.transmit(mid, sa.seal(QM, mid, [hashPayload(h1), ...rest]), 'quick-mode', true, () => {
    void sa.queue.run(() => abandon(sa, mid, st, 'no Quick Mode reply'));
  });
}

async function abandon(sa: IsakmpSa, mid: number, st: QuickState, reason: string): Promise<void> {
  table(sa).delete(mid);
  sa.finish(mid);
  // A responder that never got a valid QM3: the initiator installed the pair as it sent QM3 (lost,
  // or one we refused), and would send into an SA we never complete until it re-keys the pair.
  // A DELETE for the SPI we offered ends it there (an initiator that installed nothing ignores it).
  if (st.role === 'responder' && sa.isUp) {
    const spi = Buffer.alloc(4);
    spi.writeUInt32BE(st.spiIn >>> 0);
    sendInformational(sa, [
      { type: V1PayloadType.D, doi: V1Doi.IPSEC, protocolId: V1ProtocolId.IPSEC_ESP, spiSize: 4, spis: [spi] },
    ]);
  }
  st.ke = undefined;
  st.shared?.fill(0);
  st.early?.keysIn.destroy();
  st.early?.keysOut.destroy();
  await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: st.spiIn, proto: 'esp' }).catch(() => {});
  sa.env.emit({ type: 'child.failed', version: 1, peer: sa.peerName, child: st.policy.name, reason });
  st.onDone?.(false, reason);
}

/**
 * The ISAKMP SA is gone with Quick Modes in flight: their SPIs (larval, or a
 * responder's inbound SA keyed at QM2) would otherwise stay in the kernel.
 */
export async function dropPendingQuickModes(sa: IsakmpSa): Promise<void> {
  const t = pending.get(sa);
  if (!t) return;
  pending.delete(sa);
  for (const st of t.values()) {
    st.ke = undefined;
    st.shared?.fill(0);
    st.early?.keysIn.destroy();
    st.early?.keysOut.destroy();
    st.early = undefined;
    await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: st.spiIn, proto: 'esp' }).catch(() => {});
  }
}

/** Verifies the HASH that opens a Quick Mode message; the bytes after it otherwise. */
function afterHash(opened: Opened): Buffer {
  const len = opened.chain.readUInt16BE(2);
  return opened.chain.subarray(len);
}

function hashOf(opened: Opened): Buffer {
  const p = opened.payloads[0];
  return p?.type === V1PayloadType.HASH ? p.data : Buffer.alloc(0);
}

/** Every Quick Mode message (either role), already decrypted. */
export async function onQuickMode(sa: IsakmpSa, raw: Buffer, h: IsakmpHeader, opened: Opened): Promise<void> {
  const st = table(sa).get(h.messageId);
  if (!st && sa.hasFlight(h.messageId)) return sa.drop(`Quick Mode ${h.messageId} already complete`);
  const step = !st ? 1 : st.role === 'initiator' ? 2 : 3;
  const rules = checkV1Rules(QM, step, opened.payloads, { encrypted: true });
  const bad = (reason: string) => {
    if (opened.fresh) sa.reject(h.messageId);
    sa.drop(`QM${step}: ${reason}`);
  };
  if (!rules.ok) return bad(rules.reason);
  const prf = sa.prf!;
  const skeyidA = sa.keys!.skeyidA;
  if (step === 1) {
    if (!hashesEqual(hashOf(opened), quickModeHash1(prf, skeyidA, h.messageId, afterHash(opened))))
      return bad('HASH(1) mismatch');
    sa.received(h.messageId, raw);
    return respond(sa, h.messageId, opened.payloads);
  }
  const s = st as QuickState;
  if (step === 2) {
    const expect = quickModeHash2(prf, skeyidA, h.messageId, s.ni, afterHash(opened));
    if (!hashesEqual(hashOf(opened), expect)) return bad('HASH(2) mismatch');
    sa.received(h.messageId, raw);
    return completeInitiator(sa, h.messageId, s, opened.payloads);
  }
  const expect = quickModeHash3(prf, skeyidA, h.messageId, s.ni, s.nr as Buffer);
  if (!hashesEqual(hashOf(opened), expect)) return bad('HASH(3) mismatch');
  sa.received(h.messageId, raw);
  sa.finish(h.messageId);
  table(sa).delete(h.messageId);
  await install(sa, s);
}

async function completeInitiator(sa: IsakmpSa, mid: number, st: QuickState, payloads: V1Payload[]): Promise<void> {
  const answer = payloads.find((p) => p.type === V1PayloadType.SA) as SaV1Payload;
  const acc = acceptPhase2Answer(st.offer as SaV1Payload, answer);
  const ke = payloads.find((p) => p.type === V1PayloadType.KE);
  if (!acc) return abandon(sa, mid, st, 'responder chose a transform we did not offer');
  if ((acc.choice.group !== undefined) !== (st.ke !== undefined) || (st.ke && !ke))
    return abandon(sa, mid, st, 'PFS mismatch');
  const ids = payloads.filter((p): p is IdV1Payload => p.type === V1PayloadType.ID);
  if (ids.length === 2 && st.ids) {
    const same = (a: IdV1Payload, b: IdV1Payload) =>
      a.idType === b.idType && a.port === b.port && a.protocolId === b.protocolId && a.data.equals(b.data);
    if (!same(ids[0] as IdV1Payload, st.ids[0]) || !same(ids[1] as IdV1Payload, st.ids[1]))
      return abandon(sa, mid, st, 'responder changed IDci/IDcr');
  }
  if (st.ke && ke?.type === V1PayloadType.KE) {
    try {
      st.shared = st.ke.computeShared(ke.data);
    } catch (err) {
      return abandon(sa, mid, st, String(err));
    }
  }
  st.choice = acc.choice;
  st.peerSpi = acc.peerSpi;
  // QM2 carries NAT-OAi (us as the responder sees us), then NAT-OAr: the responder's own address.
  const oa = peerOriginalAddress(payloads, 'last');
  if (oa) st.peerOa = oa;
  st.nr = Buffer.from((payloads.find((p) => p.type === V1PayloadType.NONCE) as { data: Buffer }).data);
  const rl = responderLifetimeMs(payloads) ?? acc.choice.lifetimeMs;
  if (rl !== undefined) st.lifetimeMs = Math.min(st.lifetimeMs, rl);
  // Our inbound SA is keyed before QM3 goes out: the responder installs its outbound SA when
  // QM3 arrives and its kernel sends on the new SPI at once.
  const early = buildChild(sa, st, { createdAt: 0, rekeyAt: 0, expireAt: 0 });
  try {
    await sa.env.kernel.updateSa(inboundSaSpec(early, sa.local, sa.remote));
  } catch (err) {
    early.keysIn.destroy();
    early.keysOut.destroy();
    sa.env.emit({ type: 'kernel.error', version: 1, peer: sa.peerName, op: 'install-child', message: String(err) });
    return abandon(sa, mid, st, `cannot install the inbound SA: ${String(err)}`);
  }
  st.early = early;
  const h3 = quickModeHash3(sa.prf!, sa.keys!.skeyidA, mid, st.ni, st.nr);
  sa.transmit(mid, sa.seal(QM, mid, [hashPayload(h3)]), 'quick-mode', false);
  table(sa).delete(mid);
  await install(sa, st);
}

/** Responder: QM1 authenticated; pick a child, answer with QM2, wait for QM3. */
async function respond(sa: IsakmpSa, mid: number, payloads: V1Payload[]): Promise<void> {
  const peer = sa.peer as PeerPolicy;
  const ids = payloads.filter((p): p is IdV1Payload => p.type === V1PayloadType.ID);
  const remoteTs = ids[0] ? idSelector(ids[0]) : idSelector(selectorId(hostTs(sa.remote.addr)));
  const localTs = ids[1] ? idSelector(ids[1]) : idSelector(selectorId(hostTs(sa.local.addr)));
  const notify = (type: number, why: string) => {
    sa.finish(mid);
    sa.env.emit({ type: 'child.refused', version: 1, peer: sa.peerName, reason: why });
    sendNotify(sa, type, V1ProtocolId.IPSEC_ESP);
  };
  if (!remoteTs || !localTs) return notify(V1NotifyType.INVALID_ID_INFORMATION, 'unsupported client ID');
  const fits = (c: ChildPolicy, r: TrafficSelector, l: TrafficSelector) =>
    c.remoteTs.some((t) => contains(t, r)) && c.localTs.some((t) => contains(t, l));
  let policy = peer.children.find((c) => fits(c, remoteTs, localTs));
  let ts = { remote: remoteTs, local: localTs };
  // Transport mode through a NAT: a peer behind it names its private address in its client ID,
  // which our configuration knows as the NAT's (and the reverse when we are behind one). Its
  // client IDs are taken as the ISAKMP SA's addresses (the answer echoes them as sent).
  if (!policy && (sa.nat.remote || sa.nat.local)) {
    const r = sa.nat.remote ? (natSubstitute([remoteTs], sa.remote.addr).ts[0] ?? remoteTs) : remoteTs;
    const l = sa.nat.local ? (natSubstitute([localTs], sa.local.addr).ts[0] ?? localTs) : localTs;
    policy = peer.children.find((c) => c.mode === 'transport' && fits(c, r, l));
    if (policy) ts = { remote: r, local: l };
  }
  if (!policy) return notify(V1NotifyType.INVALID_ID_INFORMATION, 'client IDs match no configured child');
  const ke = payloads.find((p) => p.type === V1PayloadType.KE);
  const sa1 = payloads.find((p) => p.type === V1PayloadType.SA) as SaV1Payload;
  let group: number | undefined;
  for (const p of sa1.proposals)
    for (const t of p.transforms) {
      const g = t.attributes.find((a) => a.type === V1P2Attr.GROUP_DESCRIPTION);
      if (g?.tv) group = g.value;
    }
  const sel = selectPhase2(sa1, policy.espProposals, policy.mode, ke ? group : undefined);
  if (!sel) return notify(V1NotifyType.NO_PROPOSAL_CHOSEN, `no acceptable ESP proposal for ${policy.name}`);
  const reqid = sa.host.reqidFor(peer.name, policy.name);
  let spiIn: number;
  try {
    spiIn = await sa.env.kernel.allocSpi({ src: sa.remote.addr, dst: sa.local.addr, proto: 'esp', reqid });
  } catch (err) {
    sa.env.emit({ type: 'kernel.error', version: 1, peer: sa.peerName, op: 'allocspi', message: String(err) });
    return;
  }
  // QM1 carries NAT-OAi first: the initiator's own address.
  const peerOa = sel.choice.udp && policy.mode === 'transport' ? peerOriginalAddress(payloads, 'first') : undefined;
  const st: QuickState = {
    role: 'responder',
    startedAt: sa.env.clock.now(),
    policy,
    reqid,
    spiIn,
    ni: Buffer.from((payloads.find((p) => p.type === V1PayloadType.NONCE) as { data: Buffer }).data),
    nr: sa.env.random(NONCE_BYTES),
    choice: sel.choice,
    peerSpi: sel.peerSpi,
    ...(peerOa ? { peerOa } : {}),
    localTs: ts.local,
    remoteTs: ts.remote,
    lifetimeMs: Math.min(sel.choice.lifetimeMs ?? policy.lifetimeMs, policy.lifetimeMs),
  };
  const rest: V1Payload[] = [
    answerSa(sel.proposal, sel.transform, spiIn),
    { type: V1PayloadType.NONCE, data: st.nr as Buffer },
  ];
  if (ke?.type === V1PayloadType.KE && sel.choice.group !== undefined) {
    const ours = createKeyExchange(sel.choice.group);
    try {
      st.shared = ours.computeShared(ke.data);
    } catch (err) {
      await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: spiIn, proto: 'esp' }).catch(() => {});
      return notify(V1NotifyType.INVALID_KEY_INFORMATION, String(err));
    }
    rest.push({ type: V1PayloadType.KE, data: ours.publicValue });
  }
  rest.push(...ids);
  if (sel.choice.udp && policy.mode === 'transport') rest.push(natOa(sa.remote.addr), natOa(sa.local.addr));
  if ((sel.choice.lifetimeMs ?? 0) > policy.lifetimeMs)
    rest.push(lifetimeNotify(spiIn, Math.round(policy.lifetimeMs / 1000)));
  // The inbound SA is keyed before QM2 goes out: the initiator installs the pair and its kernel
  // sends on the new SPI as soon as QM3 is sent, which can be before QM3 is processed here.
  // The outbound SA and the policies follow QM3 (the initiator only decrypts after sending it).
  const early = buildChild(sa, st, { createdAt: 0, rekeyAt: 0, expireAt: 0 });
  try {
    await sa.env.kernel.updateSa(inboundSaSpec(early, sa.local, sa.remote));
  } catch (err) {
    early.keysIn.destroy();
    early.keysOut.destroy();
    sa.env.emit({ type: 'kernel.error', version: 1, peer: sa.peerName, op: 'install-child', message: String(err) });
    await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: spiIn, proto: 'esp' }).catch(() => {});
    return notify(V1NotifyType.NO_PROPOSAL_CHOSEN, `cannot install the inbound SA: ${String(err)}`);
  }
  st.early = early;
  const h2 = quickModeHash2(sa.prf!, sa.keys!.skeyidA, mid, st.ni, encodeV1PayloadChain(rest).bytes);
  table(sa).set(mid, st);
  sa.transmit(mid, sa.seal(QM, mid, [hashPayload(h2), ...rest]), 'quick-mode', true, () => {
    void sa.queue.run(() => abandon(sa, mid, st, 'no Quick Mode 3'));
  });
}

function hostTs(addr: string): TrafficSelector {
  const b = ipToBytes(addr);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, proto: 0, startPort: 0, endPort: 65535, start: v, end: v };
}

function keymat(sa: IsakmpSa, st: QuickState, spi: number): DirectionKeys {
  const suite = (st.choice as Phase2Choice).suite;
  const encLen = encrKeyMaterialSize(suite.encr.id, suite.encr.keyLen);
  const intLen = integKeyMaterialSize(suite.integ);
  const km = quickModeKeymat({
    prf: sa.prf!,
    skeyidD: sa.keys!.skeyidD,
    protocol: V1ProtocolId.IPSEC_ESP,
    spi,
    ni: st.ni,
    nr: st.nr as Buffer,
    ...(st.shared ? { sharedSecret: st.shared } : {}),
    length: encLen + intLen,
  });
  const keys = new DirectionKeys(Buffer.from(km.subarray(0, encLen)), Buffer.from(km.subarray(encLen)));
  km.fill(0);
  return keys;
}

/** Rekey and expiry times of a pair installed now. */
function childTimes(sa: IsakmpSa, st: QuickState): Pick<ChildSa, 'createdAt' | 'rekeyAt' | 'expireAt'> {
  const peer = sa.peer as PeerPolicy;
  const now = sa.env.clock.now();
  // The responder's soft lifetime is shorter by half a margin: the initiator normally rekeys first.
  // A margin longer than the lifetime (a peer's short lifetime) is cut to half of it, as in phase 1.
  const margin =
    Math.min(st.lifetimeMs / 2, withJitter(st.policy.rekeyMarginMs, peer.rekeyJitter, sa.env.rand01)) /
    (st.role === 'responder' ? 2 : 1);
  return { createdAt: now, rekeyAt: now + Math.max(1000, st.lifetimeMs - margin), expireAt: now + st.lifetimeMs };
}

/** The negotiated pair with its keys (consumes the PFS shared secret); times set when it is installed. */
function buildChild(sa: IsakmpSa, st: QuickState, times = childTimes(sa, st)): ChildSa {
  const choice = st.choice as Phase2Choice;
  const child: ChildSa = {
    uid: sa.nextChildUid(),
    name: st.policy.name,
    state: 'creating',
    reqid: st.reqid,
    mode: choice.mode,
    spiIn: st.spiIn,
    spiOut: st.peerSpi as number,
    suite: choice.suite,
    localTs: [st.localTs],
    remoteTs: [st.remoteTs],
    encap: choice.udp,
    ...(choice.udp && choice.mode === 'transport' && st.peerOa ? { natOa: st.peerOa } : {}),
    keysIn: keymat(sa, st, st.spiIn),
    keysOut: keymat(sa, st, st.peerSpi as number),
    ...times,
    minNonce: Buffer.compare(st.ni, st.nr as Buffer) <= 0 ? st.ni : (st.nr as Buffer),
    initiator: st.role === 'initiator',
    timers: {},
  };
  st.shared?.fill(0);
  return child;
}

/** Installs the negotiated pair; the host retires a rekey's old pair (we initiated it) or resolves duplicates. */
async function install(sa: IsakmpSa, st: QuickState): Promise<void> {
  const early = st.early;
  st.early = undefined;
  const child = early ? Object.assign(early, childTimes(sa, st)) : buildChild(sa, st);
  try {
    if (early) {
      // The inbound SA went in before QM2/QM3 was sent: the outbound SA and the policies now.
      await sa.env.kernel.addSa(outboundSaSpec(child, sa.local, sa.remote));
      await holdChildPolicies(sa.host.book, child, sa.local, sa.remote);
    } else {
      await installChild(sa.env.kernel, sa.host.book, child, sa.local, sa.remote);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    sa.env.emit({ type: 'kernel.error', version: 1, peer: sa.peerName, op: 'install-child', message });
    if (early) await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: child.spiIn, proto: 'esp' }).catch(() => {});
    child.keysIn.destroy();
    child.keysOut.destroy();
    st.onDone?.(false, message);
    return;
  }
  sa.children.set(child.uid, child);
  sa.transitionChild(child, 'installed', st.rekeyOf ? 'rekeyed in' : 'Quick Mode');
  sa.scheduleChildTimers(child);
  sa.env.keylog?.('esp_sa', espLine(sa, child, 'in'));
  sa.env.keylog?.('esp_sa', espLine(sa, child, 'out'));
  sa.host.onChildInstalled(sa, child, st.rekeyOf, st.startedAt);
  st.onDone?.(true, 'installed');
}

/** A line of tshark's esp_sa table. */
function espLine(sa: IsakmpSa, c: ChildSa, dir: 'in' | 'out'): string {
  const keys = dir === 'in' ? c.keysIn : c.keysOut;
  const [src, dst] = dir === 'in' ? [sa.remote.addr, sa.local.addr] : [sa.local.addr, sa.remote.addr];
  const encr =
    c.suite.encr.id === 20
      ? 'AES-GCM with 16 octet ICV [RFC4106]'
      : c.suite.encr.id === 12
        ? 'AES-CBC [RFC3602]'
        : `ENCR(${c.suite.encr.id})`;
  const integ: Record<number, string> = {
    2: 'HMAC-SHA-1-96 [RFC2404]',
    12: 'HMAC-SHA-256-128 [RFC4868]',
    13: 'HMAC-SHA-384-192 [RFC4868]',
    14: 'HMAC-SHA-512-256 [RFC4868]',
  };
  return [
    `"${src.includes(':') ? 'IPv6' : 'IPv4'}"`,
    `"${src}"`,
    `"${dst}"`,
    `"0x${spiHex(dir === 'in' ? c.spiIn : c.spiOut)}"`,
    `"${encr}"`,
    `"0x${keys.encKey.toString('hex')}"`,
    `"${c.suite.integ === undefined ? 'NULL' : (integ[c.suite.integ] ?? `INTEG(${c.suite.integ})`)}"`,
    `"0x${keys.integKey.toString('hex')}"`,
  ].join(',');
}
