/**
 * Informational exchanges under an ISAKMP SA (RFC 2409 5.7): DELETE for the
 * ISAKMP SA and for IPsec SAs, notifies, and RFC 3706 DPD R-U-THERE /
 * R-U-THERE-ACK, each protected by HASH(1). Unprotected notifies are only
 * believed while Main Mode 1 awaits its answer (NO-PROPOSAL-CHOSEN); an
 * unprotected INVALID-COOKIE for an established SA is a hint that the peer
 * lost its state, which the host confirms with DPD before acting on it.
 */
import { hashesEqual, informationalHash } from '../crypto/ikev1/index.js';
import type { ChildSa } from '../ikev2/child-sa.js';
import type { Endpoint } from '../ikev2/env.js';
import { livenessSchedule } from '../ikev2/retransmit.js';
import {
  checkV1Rules,
  type DeleteV1Payload,
  decodeDpdNotify,
  encodeDpdNotify,
  encodeIsakmpMessage,
  encodeV1PayloadChain,
  type IsakmpHeader,
  type IsakmpMessage,
  name,
  V1Doi,
  V1ExchangeType,
  V1NotifyType,
  type V1Payload,
  V1PayloadType,
  V1ProtocolId,
} from '../wire/ikev1/index.js';
import type { IsakmpSa } from './isakmp-sa.js';
import { failPhase1 } from './main-mode.js';

const INFO = V1ExchangeType.INFORMATIONAL;

/** Sends one protected Informational message (no answer expected). */
export function sendInformational(sa: IsakmpSa, payloads: V1Payload[]): void {
  if (!sa.crypto || !sa.keys || !sa.prf) return;
  const mid = sa.newMessageId();
  const h = informationalHash(sa.prf, sa.keys.skeyidA, mid, encodeV1PayloadChain(payloads).bytes);
  sa.transmit(mid, sa.seal(INFO, mid, [{ type: V1PayloadType.HASH, data: h }, ...payloads]), 'informational', false);
}

export function sendNotify(sa: IsakmpSa, notifyType: number, protocolId: number = V1ProtocolId.ISAKMP): void {
  sendInformational(sa, [
    { type: V1PayloadType.N, doi: V1Doi.IPSEC, protocolId, spi: Buffer.alloc(0), notifyType, data: Buffer.alloc(0) },
  ]);
}

/** Deletes phase 2 SAs through the peer (our inbound SPIs), then locally. */
export async function deleteChildren(sa: IsakmpSa, children: ChildSa[], reason: string): Promise<void> {
  const live = children.filter((c) => c.state !== 'destroyed');
  if (live.length === 0) return;
  if (sa.isUp) {
    const spis = live.map((c) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(c.spiIn >>> 0);
      return b;
    });
    sendInformational(sa, [
      { type: V1PayloadType.D, doi: V1Doi.IPSEC, protocolId: V1ProtocolId.IPSEC_ESP, spiSize: 4, spis },
    ]);
  }
  for (const c of live) {
    if (c.state !== 'deleting') sa.transitionChild(c, 'deleting', reason);
    await sa.removeChild(c, reason);
  }
}

/** Sends DELETE for the ISAKMP SA itself. */
export function sendIsakmpDelete(sa: IsakmpSa): void {
  sendInformational(sa, [
    {
      type: V1PayloadType.D,
      doi: V1Doi.IPSEC,
      protocolId: V1ProtocolId.ISAKMP,
      spiSize: 16,
      spis: [Buffer.concat([sa.cookieI, sa.cookieR])],
    },
  ]);
}

/** Sends one R-U-THERE with the next sequence number (its ACK settles the round in flight). */
function sendRuThere(sa: IsakmpSa): void {
  sa.dpd.seqOut = (sa.dpd.seqOut + 1) >>> 0;
  sa.dpd.outstanding.add(sa.dpd.seqOut);
  sa.env.emit({ type: 'liveness.sent', version: 1, peer: sa.peerName, seq: sa.dpd.seqOut });
  sendInformational(sa, [
    encodeDpdNotify({
      kind: 'r-u-there',
      initiatorCookie: sa.cookieI,
      responderCookie: sa.cookieR,
      sequence: sa.dpd.seqOut,
    }),
  ]);
}

/**
 * One DPD round: R-U-THERE, repeated within the timeout, then the peer is dead.
 * Resolves with the verdict; a call while a round is in flight waits for that round.
 */
export function probe(sa: IsakmpSa): Promise<'alive' | 'dead'> {
  const peer = sa.peer;
  if (!peer || !sa.isUp) return Promise.resolve('dead');
  const verdict = new Promise<'alive' | 'dead'>((resolve) => sa.dpd.waiters.push(resolve));
  if (sa.dpd.timer) return verdict;
  const schedule = livenessSchedule(peer.dpdTimeoutMs);
  sa.dpd.tries = 0;
  sa.dpd.outstanding.clear();
  const round = () => {
    sendRuThere(sa);
    sa.dpd.timer = sa.env.clock.setTimer(schedule.baseMs, () => {
      sa.dpd.timer = undefined;
      if (!sa.isUp) return sa.settleDpd('dead');
      if (sa.dpd.tries < schedule.tries) {
        sa.dpd.tries++;
        round();
        return;
      }
      sa.recordError('TIMEOUT', 'DPD: no R-U-THERE-ACK');
      sa.settleDpd('dead');
      sa.host.onFailure(sa, 'DPD: no R-U-THERE-ACK', 'liveness');
    });
  };
  round();
  return verdict;
}

/**
 * The peer said (unauthenticated) that it does not know this SA: one R-U-THERE
 * that must be answered within `ms`, or the peer is dead. A DPD round in flight
 * is cut short the same way (an ACK to any of its R-U-THEREs still counts).
 */
export function confirmLostState(sa: IsakmpSa, ms: number, reason: string): Promise<'alive' | 'dead'> {
  if (!sa.peer || !sa.isUp) return Promise.resolve('dead');
  const verdict = new Promise<'alive' | 'dead'>((resolve) => sa.dpd.waiters.push(resolve));
  sa.dpd.timer?.cancel();
  sendRuThere(sa);
  sa.dpd.timer = sa.env.clock.setTimer(ms, () => {
    sa.dpd.timer = undefined;
    if (!sa.isUp) return sa.settleDpd('dead');
    sa.recordError('PEER_LOST_STATE', `${reason}, and no R-U-THERE-ACK within ${ms} ms`);
    sa.settleDpd('dead');
    sa.host.onFailure(sa, `${reason}, confirmed by DPD`, 'liveness');
  });
  return verdict;
}

/** Every Informational message addressed to this SA. */
export async function onInformational(sa: IsakmpSa, raw: Buffer, msg: IsakmpMessage, from: Endpoint): Promise<void> {
  const h = msg.header;
  if (msg.payloads) {
    // Unprotected: only an answer to Main Mode 1 (no keys yet) is believed.
    const n = msg.payloads.find((p) => p.type === V1PayloadType.N);
    if (sa.isInitiator && sa.hs.step === 1 && n?.type === V1PayloadType.N && n.notifyType < 16384) {
      return failPhase1(sa, name(V1NotifyType, n.notifyType), `peer answered ${name(V1NotifyType, n.notifyType)}`);
    }
    // The peer does not know this established SA (it lost its state): a hint only, which
    // anyone could forge; the host confirms it with an authenticated DPD round.
    if (sa.isUp && n?.type === V1PayloadType.N && isLostStateNotify(sa, n)) {
      return sa.host.onLostStateHint?.(sa, name(V1NotifyType, n.notifyType));
    }
    return sa.drop('unprotected Informational ignored', from);
  }
  if (sa.replayIfDuplicate(h.messageId, raw)) return;
  const opened = sa.open(h, msg.encrypted);
  if ('error' in opened) return sa.drop(`Informational: ${opened.error}`, from);
  const rules = checkV1Rules(INFO, 1, opened.payloads, { encrypted: true });
  const first = opened.payloads[0];
  const hashLen = opened.chain.readUInt16BE(2);
  const expected =
    sa.prf && sa.keys
      ? informationalHash(sa.prf, sa.keys.skeyidA, h.messageId, opened.chain.subarray(hashLen))
      : undefined;
  if (!rules.ok || first?.type !== V1PayloadType.HASH || !expected || !hashesEqual(first.data, expected)) {
    if (opened.fresh) sa.reject(h.messageId);
    return sa.drop(`Informational: ${rules.ok ? 'HASH(1) mismatch' : rules.reason}`, from);
  }
  sa.received(h.messageId, raw);
  for (const p of opened.payloads) {
    if (p.type === V1PayloadType.N) {
      if (p.notifyType === V1NotifyType.R_U_THERE || p.notifyType === V1NotifyType.R_U_THERE_ACK) {
        onDpd(sa, p);
      } else {
        sa.env.emit({
          type: 'notify.received',
          version: 1,
          peer: sa.peerName,
          notify: name(V1NotifyType, p.notifyType),
        });
      }
    } else if (p.type === V1PayloadType.D) {
      await onDelete(sa, p);
    }
  }
}

/**
 * INVALID-COOKIE, or INVALID-SPI for the ISAKMP protocol, naming this SA's cookies
 * (or no SPI at all: the header's cookies are ours already).
 */
function isLostStateNotify(sa: IsakmpSa, n: Extract<V1Payload, { type: 11 }>): boolean {
  const t = n.notifyType;
  if (t !== V1NotifyType.INVALID_COOKIE && !(t === V1NotifyType.INVALID_SPI && n.protocolId === V1ProtocolId.ISAKMP))
    return false;
  return n.spi.length === 0 || n.spi.equals(Buffer.concat([sa.cookieI, sa.cookieR]));
}

/**
 * Our answer to an encrypted message for an ISAKMP SA we do not know (we lost our state,
 * or it expired): an unprotected Informational with INVALID-COOKIE (RFC 2408 5.2 allows
 * one) naming the cookie pair, so a peer that still holds the SA can confirm and move on.
 */
export function invalidCookieNotify(h: IsakmpHeader, messageId: number): Buffer {
  return encodeIsakmpMessage(
    {
      initiatorCookie: h.initiatorCookie,
      responderCookie: h.responderCookie,
      majorVersion: 1,
      minorVersion: 0,
      exchangeType: INFO,
      flags: { encryption: false, commit: false, authOnly: false },
      messageId,
    },
    [
      {
        type: V1PayloadType.N,
        doi: V1Doi.IPSEC,
        protocolId: V1ProtocolId.ISAKMP,
        spi: Buffer.concat([h.initiatorCookie, h.responderCookie]),
        notifyType: V1NotifyType.INVALID_COOKIE,
        data: Buffer.alloc(0),
      },
    ],
  );
}

function onDpd(sa: IsakmpSa, p: Extract<V1Payload, { type: 11 }>): void {
  const d = decodeDpdNotify(p);
  if (!d.ok) return sa.drop(`DPD: ${d.reason}`);
  if (!d.dpd.initiatorCookie.equals(sa.cookieI) || !d.dpd.responderCookie.equals(sa.cookieR))
    return sa.drop('DPD: cookies do not match the SA');
  if (d.dpd.kind === 'r-u-there') {
    sendInformational(sa, [
      encodeDpdNotify({
        kind: 'r-u-there-ack',
        initiatorCookie: sa.cookieI,
        responderCookie: sa.cookieR,
        sequence: d.dpd.sequence,
      }),
    ]);
    return;
  }
  if (!sa.dpd.outstanding.has(d.dpd.sequence)) return sa.drop(`DPD: unexpected ACK sequence ${d.dpd.sequence}`);
  sa.settleDpd('alive');
  sa.env.emit({ type: 'liveness.ok', version: 1, peer: sa.peerName, seq: d.dpd.sequence });
  sa.armDpd();
}

async function onDelete(sa: IsakmpSa, d: DeleteV1Payload): Promise<void> {
  if (d.protocolId === V1ProtocolId.ISAKMP) {
    const ours = Buffer.concat([sa.cookieI, sa.cookieR]);
    if (!d.spis.some((s) => s.equals(ours))) return sa.drop('DELETE for another ISAKMP SA');
    sa.env.emit({ type: 'delete.received', version: 1, peer: sa.peerName, what: 'isakmp' });
    await sa.host.onIsakmpDeleted(sa);
    return;
  }
  if (d.protocolId !== V1ProtocolId.IPSEC_ESP || d.spiSize !== 4) return sa.drop(`DELETE for protocol ${d.protocolId}`);
  for (const spi of d.spis) {
    const out = spi.readUInt32BE(0);
    const c = [...sa.children.values()].find((x) => x.spiOut === out);
    if (!c) continue;
    sa.env.emit({ type: 'delete.received', version: 1, peer: sa.peerName, what: 'esp', child: c.name });
    sa.host.onChildDeletingByPeer?.(sa, c);
    if (c.state !== 'deleting' && c.state !== 'destroyed') sa.transitionChild(c, 'deleting', 'deleted by peer');
    await sa.removeChild(c, 'deleted by peer');
    sa.host.onChildDeletedByPeer?.(sa, c);
  }
}
