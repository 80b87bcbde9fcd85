import { pskAuth, signedOctets, verifyPskAuth } from '../../crypto/ikev2/auth.js';
import { type Identity, identityFromWire, sameIdentity } from '../../sa/identity.js';
import { AUTH_METHOD, EXCHANGE, isAuth, isIdi, isIdr, type Payload } from '../../wire/ikev2/index.js';
import type { IkeSa } from '../ike-sa.js';
import { errorNotify, findNotify, idBody, N, P } from '../payloads.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from '../task-manager.js';
import { AuthFailedNotifyTask } from './auth-failed.js';
import {
  certPayloads,
  certReqFor,
  isPubkey,
  localAuthProblem,
  localIdentity,
  recordCertReq,
  signLocal,
  verifyPeerSignature,
} from './auth-pubkey.js';
import { type ChildOffer, completeChild, proposeChild, respondChild } from './create-child.js';
import { notifyCode } from './ike-init.js';
import { DeleteRefusedChildTask } from './informational.js';

/** Octets each side signs or MACs (RFC 7296 2.15). */
function octets(sa: IkeSa, forInitiator: boolean, id: { idType: number; data: Buffer }): Buffer {
  const keys = sa.keys;
  const suite = sa.suite;
  const real = forInitiator ? sa.initRequest : sa.initResponse;
  if (!keys || !suite || !real) throw new Error('AUTH octets before IKE_SA_INIT completed');
  return signedOctets({
    realMessage: real,
    peerNonce: forInitiator ? sa.nr : sa.ni,
    prf: suite.prf,
    skP: forInitiator ? keys.skPi : keys.skPr,
    idPayloadBody: idBody(id),
  });
}

/** Our AUTH payload, preceded by our CERT payloads when we authenticate with a certificate. */
function ourAuth(sa: IkeSa, id: { idType: number; data: Buffer }): Payload[] {
  const peer = sa.peer;
  if (!peer || !sa.suite) throw new Error('AUTH without peer policy');
  const signed = octets(sa, sa.isInitiator, id);
  if (isPubkey(peer.auth)) {
    const { method, data } = signLocal(sa, peer.auth, signed);
    return [...certPayloads(peer.auth), P.auth(method, data)];
  }
  sa.authUsed.local = AUTH_METHOD.SHARED_KEY_MIC;
  return [P.auth(AUTH_METHOD.SHARED_KEY_MIC, pskAuth(sa.suite.prf, peer.auth.secret, signed))];
}

function verifyAuth(
  sa: IkeSa,
  id: Identity,
  idPayload: { idType: number; data: Buffer },
  auth: { method: number; data: Buffer },
  payloads: readonly Payload[],
): string | undefined {
  const peer = sa.peer;
  if (!peer || !sa.suite) return 'no peer policy';
  if (peer.auth.kind === 'psk') {
    if (auth.method !== AUTH_METHOD.SHARED_KEY_MIC)
      return `peer used auth method ${auth.method}, we expect a shared key`;
    const ok = verifyPskAuth(sa.suite.prf, peer.auth.secret, octets(sa, !sa.isInitiator, idPayload), auth.data);
    if (ok) sa.authUsed.remote = AUTH_METHOD.SHARED_KEY_MIC;
    return ok ? undefined : 'shared-key AUTH does not verify (wrong PSK?)';
  }
  return verifyPeerSignature(sa, peer.auth, id, payloads, auth, octets(sa, !sa.isInitiator, idPayload));
}

/** Initiator: IKE_AUTH with the first Child SA. */
export class IkeAuthTask implements InitiatorTask<Payload> {
  readonly name = 'ike-auth';
  private offer: ChildOffer | undefined;

  constructor(
    private readonly sa: IkeSa,
    private readonly onFailed: (reason: string, code: string) => void,
  ) {}

  async build(): Promise<OutboundMessage<Payload>> {
    const sa = this.sa;
    const peer = sa.peer;
    if (!peer) throw new Error('IKE_AUTH without peer');
    // IKE_SA_INIT failed (its task reported it), or we cannot sign: stop here. A destroyed task
    // manager sends nothing (the message is never encoded) and aborts what else was queued.
    const cannot = sa.keys ? localAuthProblem(sa) : 'IKE_SA_INIT did not complete';
    if (cannot) {
      sa.tm.destroy();
      if (sa.keys) this.fail('AUTHENTICATION_FAILED', `cannot authenticate ourselves: ${cannot}`);
      return { exchange: EXCHANGE.IKE_AUTH, payloads: [] };
    }
    sa.transition('authenticating', 'IKE_AUTH sent');
    const idi = P.idi(localIdentity(peer)) as Payload & { idType: number; data: Buffer };
    const payloads: Payload[] = [idi];
    if (sa.host.wantsInitialContact(peer)) {
      payloads.push(P.notify(N.INITIAL_CONTACT));
      sa.initialContactSent = true;
    }
    payloads.push(...certReqFor(peer), P.idr(peer.remoteId), ...ourAuth(sa, idi));
    const policy = peer.children[0];
    if (policy) {
      const { offer, payloads: childPayloads } = await proposeChild(sa, policy, { first: true });
      this.offer = offer;
      payloads.push(...childPayloads);
    }
    return { exchange: EXCHANGE.IKE_AUTH, payloads };
  }

  async onResponse(msg: InboundMessage<Payload>): Promise<TaskOutcome> {
    const sa = this.sa;
    const peer = sa.peer;
    const idr = msg.payloads.find(isIdr);
    const auth = msg.payloads.find(isAuth);
    if (!peer || !idr || !auth) {
      const err = errorNotify(msg.payloads);
      return this.fail(
        err ? notifyCode(err.notifyType) : 'INVALID_SYNTAX',
        err ? `peer refused IKE_AUTH: ${notifyCode(err.notifyType)}` : 'IKE_AUTH response lacks IDr or AUTH',
      );
    }
    const id = identityFromWire(idr.idType, idr.data);
    if (!id || !sameIdentity(id, peer.remoteId)) {
      return this.refuseResponder(`peer identity ${id?.text ?? `type ${idr.idType}`} is not ${peer.remoteId.text}`);
    }
    const bad = verifyAuth(sa, id, idr, auth, msg.payloads);
    if (bad) return this.refuseResponder(bad);
    sa.remoteId = id;
    sa.markEstablished(false);
    if (this.offer) {
      const res = await completeChild(sa, this.offer, msg.payloads, true);
      // Refused a response that was not an error: the peer may have made a pair for it.
      if (!res.ok && !errorNotify(msg.payloads)) void sa.tm.enqueue(new DeleteRefusedChildTask([this.offer.spiIn]));
      if (!res.ok)
        sa.env.emit({
          type: 'child.failed',
          peer: sa.peerName,
          child: this.offer.policy.name,
          code: res.code,
          reason: res.message,
        });
    }
    return { kind: 'done' };
  }

  onAbort(): void {
    if (this.offer)
      void this.sa.env.kernel
        .deleteSa({ dst: this.sa.local.addr, spi: this.offer.spiIn, proto: 'esp' })
        .catch(() => {});
  }

  /** The responder authenticated us but we refuse it: tell it before we go (RFC 7296 2.21.2). */
  private refuseResponder(message: string): TaskOutcome {
    void this.sa.tm.enqueue(new AuthFailedNotifyTask(), true);
    return this.fail('AUTHENTICATION_FAILED', message);
  }

  private fail(code: string, message: string): TaskOutcome {
    this.onAbort();
    this.sa.recordError(code, message);
    this.onFailed(message, code);
    return { kind: 'failed', reason: message };
  }
}

/** Responder: IKE_AUTH. On failure the SA is destroyed once the error is sent. */
export async function respondIkeAuth(sa: IkeSa, msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
  const reply = (payloads: Payload[]) => ({ exchange: EXCHANGE.IKE_AUTH, payloads });
  const refuse = (code: string, why: string) => {
    sa.recordError(code, why);
    sa.env.emit({
      type: 'handshake.failed',
      peer: sa.peerName,
      version: 2,
      role: 'responder',
      reason: code,
      detail: why,
    });
    void sa.queue.run(() => sa.destroy(`IKE_AUTH refused: ${why}`));
    return reply([P.notify(N.AUTHENTICATION_FAILED)]);
  };
  if (sa.state !== 'connecting') return reply([P.notify(N.INVALID_SYNTAX)]);
  const idi = msg.payloads.find(isIdi);
  const auth = msg.payloads.find(isAuth);
  if (!idi || !auth) return refuse('INVALID_SYNTAX', 'IKE_AUTH request lacks IDi or AUTH');
  const id = identityFromWire(idi.idType, idi.data);
  if (!id) return refuse('AUTHENTICATION_FAILED', `unsupported identity type ${idi.idType}`);
  const peer = sa.host.resolvePeer(id, sa.remote);
  if (!peer)
    return refuse('AUTHENTICATION_FAILED', `no peer configured for identity ${id.text} from ${sa.remote.addr}`);
  sa.peer = peer;
  sa.transition('authenticating', 'IKE_AUTH received');
  recordCertReq(sa, msg.payloads);
  const bad = verifyAuth(sa, id, idi, auth, msg.payloads);
  if (bad) return refuse('AUTHENTICATION_FAILED', `${id.text}: ${bad}`);
  const local = localAuthProblem(sa);
  if (local) return refuse('AUTHENTICATION_FAILED', `cannot authenticate ourselves to ${id.text}: ${local}`);
  sa.remoteId = id;
  const idrPayload = P.idr(localIdentity(peer)) as Payload & { idType: number; data: Buffer };
  const out: Payload[] = [idrPayload, ...ourAuth(sa, idrPayload)];
  sa.markEstablished(!!findNotify(msg.payloads, N.INITIAL_CONTACT));
  if (msg.payloads.some((p) => p.type === 33)) {
    const child = await respondChild(sa, msg.payloads, { first: true });
    out.push(...child.payloads);
  }
  return reply(out);
}
