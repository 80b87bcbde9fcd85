import { createKeyExchange, type KeyExchange } from '../../crypto/dh.js';
import { deriveRekeyedIkeSaKeys, type IkeSaKeys } from '../../crypto/ikev2/keys.js';
import {
  acceptedIkeSuite,
  type IkeSuite,
  ikeSpecToWire,
  ikeSuiteToWire,
  selectIkeProposal,
} from '../../sa/proposal.js';
import { EXCHANGE, isKe, isNonce, isSa, type Payload } from '../../wire/ikev2/index.js';
import { IkeSa } from '../ike-sa.js';
import { errorNotify, N, P } from '../payloads.js';
import { MessageProtector } from '../protect.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from '../task-manager.js';
import { keylogLine, notifyCode } from './ike-init.js';
import { DeleteIkeTask } from './informational.js';

const NONCE_BYTES = 32;

function deriveKeys(
  old: IkeSa,
  suite: IkeSuite,
  p: { ni: Buffer; nr: Buffer; spiI: Buffer; spiR: Buffer; shared: Buffer },
): IkeSaKeys {
  if (!old.suite || !old.keys) throw new Error('IKE rekey without keys');
  const keys = deriveRekeyedIkeSaKeys({
    oldPrf: old.suite.prf,
    oldSkD: old.keys.skD,
    prf: suite.prf,
    encr: suite.encr.id,
    ...(suite.encr.keyLen !== undefined ? { keyLen: suite.encr.keyLen } : {}),
    ...(suite.integ !== undefined ? { integ: suite.integ } : {}),
    ni: p.ni,
    nr: p.nr,
    spiI: p.spiI,
    spiR: p.spiR,
    sharedSecret: p.shared,
  });
  p.shared.fill(0);
  return keys;
}

/** Builds the new IKE SA that replaces `old`, established from the start. */
function spawn(
  old: IkeSa,
  role: 'initiator' | 'responder',
  suite: IkeSuite,
  keys: IkeSaKeys,
  n: { ni: Buffer; nr: Buffer; spiI: Buffer; spiR: Buffer },
): IkeSa {
  const fresh = new IkeSa(old.host, old.host.newUid(), role, n.spiI, n.spiR, old.local, old.remote, old.peer);
  fresh.suite = suite;
  fresh.keys = keys;
  fresh.ni = n.ni;
  fresh.nr = n.nr;
  fresh.nat = { ...old.nat };
  fresh.fragmentation = old.fragmentation;
  fresh.remoteId = old.remoteId;
  fresh.responderProposals = old.responderProposals;
  fresh.onRemoteMoved = old.onRemoteMoved;
  fresh.protector = new MessageProtector(suite, keys, role === 'initiator', old.env.random);
  old.host.onRekeyed(old, fresh);
  fresh.enterEstablished('rekeyed in');
  old.env.keylog?.('ikev2_decryption_table', keylogLine(fresh));
  return fresh;
}

/**
 * Moves every Child SA of `from` to `to` (their kernel state is untouched). A child's
 * rekey and expiry timers call back into the IKE SA that armed them, so they are
 * re-armed on `to` (same deadlines): left on `from`, the rekey would be a no-op on a
 * rekeyed IKE SA and the hard expiry would drop the child without a Delete.
 */
function moveChildren(from: IkeSa, to: IkeSa): void {
  from.successor = to;
  for (const [uid, c] of from.children) {
    to.children.set(uid, c);
    if (c.state !== 'destroyed') to.scheduleChildTimers(c);
  }
  from.children.clear();
}

/** Initiator side of an IKE SA rekey. */
export class IkeRekeyTask implements InitiatorTask<Payload> {
  readonly name = 'ike-rekey';
  private spiI: Buffer = Buffer.alloc(0);
  private ni: Buffer = Buffer.alloc(0);
  private ke: KeyExchange | undefined;

  constructor(private readonly sa: IkeSa) {}

  build(): OutboundMessage<Payload> {
    const sa = this.sa;
    sa.transition('rekeying', 'IKE SA rekey started');
    this.spiI = sa.host.newSpi();
    this.ni = sa.env.random(NONCE_BYTES);
    const group = sa.suite?.ke ?? sa.peer?.ikeProposals[0]?.ke[0] ?? 31;
    this.ke = createKeyExchange(group);
    const specs = (sa.peer?.ikeProposals ?? []).map((p) => ({
      ...p,
      ke: p.ke.includes(group) ? [group, ...p.ke.filter((g) => g !== group)] : p.ke,
    }));
    return {
      exchange: EXCHANGE.CREATE_CHILD_SA,
      payloads: [P.sa(ikeSpecToWire(specs, this.spiI)), P.nonce(this.ni), P.ke(group, this.ke.publicValue)],
    };
  }

  onResponse(msg: InboundMessage<Payload>): TaskOutcome {
    const sa = this.sa;
    const fail = (why: string, code = 'REFUSED_ANSWER', retry = true): TaskOutcome => {
      sa.env.emit({ type: 'rekey.failed', peer: sa.peerName, kind: 'ike', code, reason: why });
      if (sa.state === 'rekeying') sa.transition('established', `IKE rekey failed: ${why}`);
      sa.recordError('REKEY_FAILED', why);
      if (retry) sa.scheduleIkeRekeyRetry();
      return { kind: 'failed', reason: why };
    };
    const err = errorNotify(msg.payloads);
    if (err) return fail(`peer refused: ${notifyCode(err.notifyType)}`, notifyCode(err.notifyType));
    // Not an error: the peer took the rekey and may already use a new IKE SA we will not have.
    // The host replaces this SA (a retry here would only meet the peer's TEMPORARY_FAILURE);
    // without such a host, the rekey is retried.
    const refuse = (why: string): TaskOutcome => {
      const out = fail(why, 'REFUSED_ANSWER', false);
      if (sa.host.onRekeyAnswerRefused) sa.host.onRekeyAnswerRefused(sa);
      else sa.scheduleIkeRekeyRetry();
      return out;
    };
    const saP = msg.payloads.find(isSa);
    const answer = saP?.proposals[0];
    const nonce = msg.payloads.find(isNonce);
    const ke = msg.payloads.find(isKe);
    if (saP?.proposals.length !== 1 || !answer || answer.spi.length !== 8 || !nonce || !ke || !this.ke) {
      return refuse('malformed IKE rekey response');
    }
    const suite = acceptedIkeSuite(answer, sa.peer?.ikeProposals ?? []);
    if (!suite || suite.ke !== ke.group || ke.group !== this.ke.group)
      return refuse('peer chose a proposal we did not offer');
    let shared: Buffer;
    try {
      shared = this.ke.computeShared(ke.data);
    } catch (e) {
      return refuse(e instanceof Error ? e.message : String(e));
    }
    const n = { ni: this.ni, nr: nonce.data, spiI: this.spiI, spiR: answer.spi };
    const fresh = spawn(sa, 'initiator', suite, deriveKeys(sa, suite, { ...n, shared }), n);
    const peerFresh = sa.ikeCollision;
    sa.ikeCollision = undefined;
    if (peerFresh && Buffer.compare(fresh.minNonce, peerFresh.minNonce) < 0) {
      // Simultaneous rekey and ours had the lowest nonce: ours is redundant; the peer deletes the old SA.
      moveChildren(sa, peerFresh);
      sa.transition('rekeyed', 'rekey collision: peer SA survives');
      void fresh.tm.enqueue(new DeleteIkeTask(fresh, 'redundant after rekey collision'));
      return { kind: 'done' };
    }
    moveChildren(sa, fresh);
    sa.transition('rekeyed', 'rekeyed');
    void sa.tm.enqueue(new DeleteIkeTask(sa, 'rekeyed'));
    sa.env.emit({ type: 'rekey.completed', peer: sa.peerName, kind: 'ike' });
    return { kind: 'done' };
  }

  onAbort(reason: 'timeout' | 'destroyed'): void {
    if (reason === 'timeout')
      this.sa.env.emit({
        type: 'rekey.failed',
        peer: this.sa.peerName,
        kind: 'ike',
        code: 'TIMEOUT',
        reason: 'no answer',
      });
    if (this.sa.state === 'rekeying') this.sa.transition('established', 'IKE rekey aborted');
  }
}

/** Responder side of an IKE SA rekey. */
export async function respondIkeRekey(sa: IkeSa, msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
  const reply = (payloads: Payload[]) => ({ exchange: EXCHANGE.CREATE_CHILD_SA, payloads });
  if (sa.state !== 'established' && sa.state !== 'rekeying') return reply([P.notify(N.TEMPORARY_FAILURE)]);
  if ([...sa.children.values()].some((c) => c.state === 'rekeying') && !sa.tm.hasTask('ike-rekey')) {
    // A Child SA rekey of ours is in flight; let it finish first (RFC 7296 2.25).
    return reply([P.notify(N.TEMPORARY_FAILURE)]);
  }
  const saP = msg.payloads.find(isSa);
  const nonce = msg.payloads.find(isNonce);
  const ke = msg.payloads.find(isKe);
  if (!saP || !nonce || !ke) return reply([P.notify(N.INVALID_SYNTAX)]);
  const sel = selectIkeProposal(saP.proposals, sa.peer?.ikeProposals ?? sa.responderProposals);
  if (!sel) return reply([P.notify(N.NO_PROPOSAL_CHOSEN)]);
  const chosen = saP.proposals.find((p) => p.num === sel.num);
  if (chosen?.spi.length !== 8) return reply([P.notify(N.INVALID_SYNTAX)]);
  if (sel.suite.ke !== ke.group) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(sel.suite.ke);
    return reply([P.notify(N.INVALID_KE_PAYLOAD, b)]);
  }
  const ours = createKeyExchange(sel.suite.ke);
  let shared: Buffer;
  try {
    shared = ours.computeShared(ke.data);
  } catch {
    return reply([P.notify(N.INVALID_SYNTAX)]);
  }
  const spiR = sa.host.newSpi();
  const nr = sa.env.random(NONCE_BYTES);
  const n = { ni: nonce.data, nr, spiI: chosen.spi, spiR };
  const fresh = spawn(sa, 'responder', sel.suite, deriveKeys(sa, sel.suite, { ...n, shared }), n);
  if (sa.state === 'rekeying' && sa.tm.hasTask('ike-rekey')) {
    // Our own rekey is in flight: the nonces decide which new SA survives.
    sa.ikeCollision = fresh;
  } else {
    moveChildren(sa, fresh);
    sa.transition('rekeyed', 'rekeyed by peer');
  }
  return reply([P.sa([ikeSuiteToWire(sel.suite, sel.num, spiR)]), P.nonce(nr), P.ke(sel.suite.ke, ours.publicValue)]);
}
