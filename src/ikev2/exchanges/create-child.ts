import { createKeyExchange, type KeyExchange } from '../../crypto/dh.js';
import { deriveChildKeys } from '../../crypto/ikev2/keys.js';
import { encrKeyMaterialSize, integKeyMaterialSize } from '../../crypto/transforms.js';
import type { ChildPolicy } from '../../sa/policy.js';
import { acceptedEspSuite, espSpecToWire, espSuiteToWire, selectEspProposal } from '../../sa/proposal.js';
import { contains, narrow, natSubstitute, type TrafficSelector } from '../../sa/traffic-selector.js';
import { withJitter } from '../../util/clock.js';
import { EXCHANGE, isKe, isNonce, isSa, isTsi, isTsr, type Payload, PROTOCOL } from '../../wire/ikev2/index.js';
import { type ChildSa, installChild, spiHex } from '../child-sa.js';
import type { IkeSa } from '../ike-sa.js';
import { errorNotify, findNotify, N, P, selectorsOf, spiBytes } from '../payloads.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from '../task-manager.js';
import { notifyCode } from './ike-init.js';
import { DeleteRefusedChildTask } from './informational.js';

const NONCE_BYTES = 32;

/** What the initiator proposed for one Child SA, kept until the response. */
export interface ChildOffer {
  policy: ChildPolicy;
  reqid: number;
  spiIn: number;
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  nonce?: Buffer;
  ke?: KeyExchange;
  rekeyOf?: ChildSa;
}

export type ChildResult = { ok: true; child: ChildSa } | { ok: false; code: string; message: string };

/** Allocates our inbound SPI and builds the Child SA payloads (IKE_AUTH or CREATE_CHILD_SA). */
export async function proposeChild(
  sa: IkeSa,
  policy: ChildPolicy,
  opts: { first: boolean; rekeyOf?: ChildSa },
): Promise<{ offer: ChildOffer; payloads: Payload[] }> {
  const reqid = opts.rekeyOf?.reqid ?? sa.host.reqidFor(sa.peerName, policy.name);
  const spiIn = await sa.env.kernel.allocSpi({ src: sa.remote.addr, dst: sa.local.addr, proto: 'esp', reqid });
  const offer: ChildOffer = {
    policy,
    reqid,
    spiIn,
    localTs: opts.rekeyOf?.localTs ?? policy.localTs,
    remoteTs: opts.rekeyOf?.remoteTs ?? policy.remoteTs,
    ...(opts.rekeyOf ? { rekeyOf: opts.rekeyOf } : {}),
  };
  const payloads: Payload[] = [];
  if (opts.rekeyOf) payloads.push(P.notify(N.REKEY_SA, Buffer.alloc(0), PROTOCOL.ESP, spiBytes(opts.rekeyOf.spiIn)));
  if (policy.mode === 'transport') payloads.push(P.notify(N.USE_TRANSPORT_MODE));
  const pfsGroup = opts.first ? undefined : policy.espProposals[0]?.ke[0];
  payloads.push(P.sa(espSpecToWire(policy.espProposals, spiBytes(spiIn), pfsGroup)));
  if (!opts.first) {
    offer.nonce = sa.env.random(NONCE_BYTES);
    payloads.push(P.nonce(offer.nonce));
    if (pfsGroup !== undefined) {
      offer.ke = createKeyExchange(pfsGroup);
      payloads.push(P.ke(pfsGroup, offer.ke.publicValue));
    }
  }
  payloads.push(P.tsi(offer.localTs), P.tsr(offer.remoteTs));
  return { offer, payloads };
}

function sameOrSubset(got: readonly TrafficSelector[], offered: readonly TrafficSelector[]): boolean {
  return got.length > 0 && got.every((g) => offered.some((o) => contains(o, g)));
}

/** Builds the ChildSa record from negotiated values and derives its keys. */
function makeChild(
  sa: IkeSa,
  args: {
    policy: ChildPolicy;
    reqid: number;
    spiIn: number;
    spiOut: number;
    suite: ReturnType<typeof acceptedEspSuite> & object;
    localTs: TrafficSelector[];
    remoteTs: TrafficSelector[];
    mode: 'tunnel' | 'transport';
    ni: Buffer;
    nr: Buffer;
    shared?: Buffer;
    /**
     * We sent the request of the exchange that creates this child. KEYMAT's first half
     * is the exchange initiator's outbound direction (RFC 7296 2.17): in a CREATE_CHILD_SA
     * started by the IKE SA responder, that is not the IKE SA initiator.
     */
    weInitiated: boolean;
  },
): ChildSa {
  const keys = sa.keys;
  const suite = sa.suite;
  if (!keys || !suite) throw new Error('Child SA without IKE keys');
  const km = deriveChildKeys({
    prf: suite.prf,
    skD: keys.skD,
    ni: args.ni,
    nr: args.nr,
    ...(args.shared ? { sharedSecret: args.shared } : {}),
    encrKeyLen: encrKeyMaterialSize(args.suite.encr.id, args.suite.encr.keyLen),
    integKeyLen: args.suite.integ === undefined ? 0 : integKeyMaterialSize(args.suite.integ),
  });
  args.shared?.fill(0);
  const now = sa.env.clock.now();
  const lifetime = args.policy.lifetimeMs;
  const margin = withJitter(args.policy.rekeyMarginMs, sa.peer?.rekeyJitter ?? 0.1, sa.env.rand01);
  return {
    uid: sa.nextChildUid(),
    name: args.policy.name,
    state: 'creating',
    reqid: args.reqid,
    mode: args.mode,
    spiIn: args.spiIn,
    spiOut: args.spiOut,
    suite: args.suite,
    localTs: args.localTs,
    remoteTs: args.remoteTs,
    encap: sa.nat.local || sa.nat.remote,
    keysIn: args.weInitiated ? km.responderToInitiator : km.initiatorToResponder,
    keysOut: args.weInitiated ? km.initiatorToResponder : km.responderToInitiator,
    createdAt: now,
    minNonce: Buffer.compare(args.ni, args.nr) <= 0 ? args.ni : args.nr,
    rekeyAt: now + lifetime - margin,
    expireAt: now + lifetime,
    timers: {},
  };
}

/** Installs a negotiated child into the kernel and the SA; failures come back as a result. */
async function activate(sa: IkeSa, child: ChildSa): Promise<ChildResult> {
  try {
    await installChild(sa.env.kernel, sa.host.book, child, sa.local, sa.remote);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    sa.recordError('KERNEL', message);
    sa.env.emit({ type: 'kernel.error', peer: sa.peerName, op: 'install-child', message });
    child.keysIn.destroy();
    child.keysOut.destroy();
    return { ok: false, code: 'KERNEL', message };
  }
  sa.children.set(child.uid, child);
  child.state = 'installed';
  sa.env.emit({
    type: 'child.state',
    peer: sa.peerName,
    child: child.name,
    spiIn: spiHex(child.spiIn),
    spiOut: spiHex(child.spiOut),
    from: 'creating',
    to: 'installed',
  });
  sa.scheduleChildTimers(child);
  sa.host.onChildInstalled?.(sa);
  sa.env.keylog?.('esp_sa', espKeylogLine(sa, child, 'in'));
  sa.env.keylog?.('esp_sa', espKeylogLine(sa, child, 'out'));
  return { ok: true, child };
}

/** A line of tshark's esp_sa table. */
export function espKeylogLine(sa: IkeSa, c: ChildSa, dir: 'in' | 'out'): string {
  const fam = sa.local.addr.includes(':') ? 'IPv6' : 'IPv4';
  const keys = dir === 'in' ? c.keysIn : c.keysOut;
  const [src, dst] = dir === 'in' ? [sa.remote.addr, sa.local.addr] : [sa.local.addr, sa.remote.addr];
  const spi = dir === 'in' ? c.spiIn : c.spiOut;
  const e = c.suite.encr;
  const encr =
    e.id === 20
      ? 'AES-GCM with 16 octet ICV [RFC4106]'
      : e.id === 12
        ? 'AES-CBC [RFC3602]'
        : e.id === 28
          ? 'ChaCha20 with Poly1305 [RFC7634]'
          : `ENCR(${e.id})`;
  const integNames: Record<number, string> = {
    2: 'HMAC-SHA-1-96 [RFC2404]',
    12: 'HMAC-SHA-256-128 [RFC4868]',
    13: 'HMAC-SHA-384-192 [RFC4868]',
    14: 'HMAC-SHA-512-256 [RFC4868]',
  };
  const integ = c.suite.integ === undefined ? 'NULL' : (integNames[c.suite.integ] ?? `INTEG(${c.suite.integ})`);
  return [
    `"${fam}"`,
    `"${src}"`,
    `"${dst}"`,
    `"0x${spiHex(spi)}"`,
    `"${encr}"`,
    `"0x${keys.encKey.toString('hex')}"`,
    `"${integ}"`,
    `"0x${keys.integKey.toString('hex')}"`,
  ].join(',');
}

/** Initiator: processes the Child SA part of an IKE_AUTH or CREATE_CHILD_SA response. */
export async function completeChild(
  sa: IkeSa,
  offer: ChildOffer,
  payloads: readonly Payload[],
  first: boolean,
): Promise<ChildResult> {
  const fail = async (code: string, message: string): Promise<ChildResult> => {
    offer.ke = undefined;
    await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: offer.spiIn, proto: 'esp' }).catch(() => {});
    sa.recordError(code, `child ${offer.policy.name}: ${message}`);
    return { ok: false, code, message };
  };
  const err = errorNotify(payloads);
  if (err) return fail(notifyCode(err.notifyType), `peer refused the Child SA: ${notifyCode(err.notifyType)}`);
  const saP = payloads.find(isSa);
  const answer = saP?.proposals[0];
  if (saP?.proposals.length !== 1 || !answer || answer.spi.length !== 4) {
    return fail('NO_PROPOSAL_CHOSEN', 'response lacks a single ESP proposal');
  }
  const suite = acceptedEspSuite(answer, offer.policy.espProposals, first ? 'ignore' : offer.ke?.group);
  if (!suite) return fail('NO_PROPOSAL_CHOSEN', 'peer chose an ESP proposal we did not offer');
  const transport = !!findNotify(payloads, N.USE_TRANSPORT_MODE);
  if (transport !== (offer.policy.mode === 'transport')) {
    return fail('NO_PROPOSAL_CHOSEN', `peer wants ${transport ? 'transport' : 'tunnel'} mode`);
  }
  let tsi = selectorsOf(payloads.find(isTsi));
  let tsr = selectorsOf(payloads.find(isTsr));
  if (!sameOrSubset(tsi, offer.localTs) || !sameOrSubset(tsr, offer.remoteTs)) {
    // Transport mode through a NAT: the peer may answer with the addresses it sees (RFC 7296 2.23.1).
    if (transport && sa.nat.local) tsi = natSubstitute(tsi, sa.local.addr).ts;
    if (transport && sa.nat.remote) tsr = natSubstitute(tsr, sa.remote.addr).ts;
    if (!sameOrSubset(tsi, offer.localTs) || !sameOrSubset(tsr, offer.remoteTs))
      return fail('TS_UNACCEPTABLE', 'peer answered with traffic selectors outside our proposal');
  }
  let ni = sa.ni;
  let nr = sa.nr;
  let shared: Buffer | undefined;
  if (!first) {
    const nonce = payloads.find(isNonce);
    if (!nonce || !offer.nonce) return fail('INVALID_SYNTAX', 'CREATE_CHILD_SA response without nonce');
    ni = offer.nonce;
    nr = nonce.data;
    if (offer.ke) {
      const ke = payloads.find(isKe);
      if (!ke || ke.group !== offer.ke.group) return fail('INVALID_KE_PAYLOAD', 'missing or wrong PFS KE in response');
      try {
        shared = offer.ke.computeShared(ke.data);
      } catch (e) {
        return fail('INVALID_KE_PAYLOAD', e instanceof Error ? e.message : String(e));
      }
    }
  }
  const child = makeChild(sa, {
    policy: offer.policy,
    reqid: offer.reqid,
    spiIn: offer.spiIn,
    spiOut: answer.spi.readUInt32BE(0),
    suite,
    localTs: tsi,
    remoteTs: tsr,
    mode: offer.policy.mode,
    ni,
    nr,
    ...(shared ? { shared } : {}),
    weInitiated: true,
  });
  return activate(sa, child);
}

/**
 * Responder: picks the configured child (of `mode`, if given) whose selectors overlap the
 * proposal. `answerI`/`answerR` are the selectors the answer carries.
 */
function matchChildPolicy(
  sa: IkeSa,
  tsi: TrafficSelector[],
  tsr: TrafficSelector[],
  name?: string,
  mode?: 'transport',
):
  | {
      policy: ChildPolicy;
      remote: TrafficSelector[];
      local: TrafficSelector[];
      answerI: TrafficSelector[];
      answerR: TrafficSelector[];
    }
  | undefined {
  for (const policy of sa.peer?.children ?? []) {
    if ((name && policy.name !== name) || (mode && policy.mode !== mode)) continue;
    const remote = narrow(tsi, policy.remoteTs);
    const local = narrow(tsr, policy.localTs);
    if (remote.length && local.length) return { policy, remote, local, answerI: remote, answerR: local };
  }
  return undefined;
}

/**
 * Responder: the Child SA part of IKE_AUTH or CREATE_CHILD_SA. Returns the
 * response payloads (an error notify when refused) and the installed child.
 */
export async function respondChild(
  sa: IkeSa,
  payloads: readonly Payload[],
  opts: { first: boolean; rekeyOf?: ChildSa },
): Promise<{ payloads: Payload[]; child?: ChildSa }> {
  const refuse = (type: number, why: string) => {
    sa.recordError(notifyCode(type), why);
    sa.env.emit({ type: 'child.failed', peer: sa.peerName, role: 'responder', code: notifyCode(type), reason: why });
    return { payloads: [P.notify(type)] };
  };
  const saP = payloads.find(isSa);
  if (!saP) return refuse(N.NO_PROPOSAL_CHOSEN, 'no SA payload for the Child SA');
  const tsi = selectorsOf(payloads.find(isTsi));
  const tsr = selectorsOf(payloads.find(isTsr));
  const transport = !!findNotify(payloads, N.USE_TRANSPORT_MODE);
  let match = matchChildPolicy(sa, tsi, tsr, opts.rekeyOf?.name);
  // Transport mode through a NAT (RFC 7296 2.23.1): a peer behind it proposes its private
  // address, which our configuration knows as the NAT's (and the reverse when we are behind
  // one). Its selectors are taken as the IKE SA's addresses; the answer carries them as sent.
  let natOa: string | undefined;
  if (!match && transport && (sa.nat.remote || sa.nat.local)) {
    const subI = sa.nat.remote ? natSubstitute(tsi, sa.remote.addr) : { ts: tsi };
    const subR = sa.nat.local ? natSubstitute(tsr, sa.local.addr) : { ts: tsr };
    const m = matchChildPolicy(sa, subI.ts, subR.ts, opts.rekeyOf?.name, 'transport');
    if (m) {
      match = { ...m, answerI: subI.original ? tsi : m.remote, answerR: subR.original ? tsr : m.local };
      natOa = subI.original;
    }
  }
  if (!match) return refuse(N.TS_UNACCEPTABLE, 'traffic selectors match no configured child');
  const { policy } = match;
  const ke = opts.first ? undefined : payloads.find(isKe);
  const sel = selectEspProposal(saP.proposals, policy.espProposals, opts.first ? 'ignore' : ke?.group);
  if (!sel) {
    if (ke) {
      const alt = selectEspProposal(saP.proposals, policy.espProposals, ke.group, true);
      if (alt?.suite.ke !== undefined) {
        const b = Buffer.alloc(2);
        b.writeUInt16BE(alt.suite.ke);
        return { payloads: [P.notify(N.INVALID_KE_PAYLOAD, b)] };
      }
    }
    return refuse(N.NO_PROPOSAL_CHOSEN, 'no acceptable ESP proposal');
  }
  const mode = transport && policy.mode === 'transport' ? 'transport' : 'tunnel';
  if (policy.mode === 'transport' && mode !== 'transport')
    return refuse(N.NO_PROPOSAL_CHOSEN, 'transport mode required');
  let ni = sa.ni;
  let nr = sa.nr;
  let shared: Buffer | undefined;
  let ourKe: KeyExchange | undefined;
  const out: Payload[] = [];
  if (!opts.first) {
    const nonce = payloads.find(isNonce);
    if (!nonce) return refuse(N.INVALID_SYNTAX, 'CREATE_CHILD_SA without nonce');
    ni = nonce.data;
    nr = sa.env.random(NONCE_BYTES);
    if (sel.suite.ke !== undefined && ke) {
      ourKe = createKeyExchange(sel.suite.ke);
      try {
        shared = ourKe.computeShared(ke.data);
      } catch {
        return refuse(N.INVALID_SYNTAX, 'invalid PFS KE value');
      }
    }
  }
  const reqid = opts.rekeyOf?.reqid ?? sa.host.reqidFor(sa.peerName, policy.name);
  let spiIn: number;
  try {
    spiIn = await sa.env.kernel.allocSpi({ src: sa.remote.addr, dst: sa.local.addr, proto: 'esp', reqid });
  } catch (err) {
    sa.env.emit({ type: 'kernel.error', peer: sa.peerName, op: 'allocspi', message: String(err) });
    return refuse(N.TEMPORARY_FAILURE, 'SPI allocation failed');
  }
  const child = makeChild(sa, {
    policy,
    reqid,
    spiIn,
    spiOut: sel.spi.readUInt32BE(0),
    suite: sel.suite,
    localTs: match.local,
    remoteTs: match.remote,
    mode,
    ni,
    nr,
    ...(shared ? { shared } : {}),
    weInitiated: false,
  });
  if (natOa && mode === 'transport') child.natOa = natOa;
  const res = await activate(sa, child);
  if (!res.ok) {
    await sa.env.kernel.deleteSa({ dst: sa.local.addr, spi: spiIn, proto: 'esp' }).catch(() => {});
    return refuse(N.TEMPORARY_FAILURE, `kernel install failed: ${res.message}`);
  }
  if (mode === 'transport') out.push(P.notify(N.USE_TRANSPORT_MODE));
  out.push(P.sa([espSuiteToWire(sel.suite, sel.num, spiBytes(spiIn))]));
  if (!opts.first) {
    out.push(P.nonce(nr));
    if (ourKe && sel.suite.ke !== undefined) out.push(P.ke(sel.suite.ke, ourKe.publicValue));
  }
  out.push(P.tsi(match.answerI), P.tsr(match.answerR));
  return { payloads: out, child };
}

/** Initiator task: a new Child SA, or a rekey of `rekeyOf` (CREATE_CHILD_SA). */
export class CreateChildTask implements InitiatorTask<Payload> {
  readonly name: string;
  private offer: ChildOffer | undefined;

  constructor(
    private readonly sa: IkeSa,
    private readonly policy: ChildPolicy,
    private readonly rekeyOf: ChildSa | undefined,
    private readonly done: (r: ChildResult) => void,
  ) {
    this.name = rekeyOf ? `child-rekey:${rekeyOf.uid}` : `child-create:${policy.name}`;
  }

  async build(): Promise<OutboundMessage<Payload>> {
    if (this.rekeyOf?.state === 'installed') this.sa.transitionChild(this.rekeyOf, 'rekeying', 'rekey started');
    const { offer, payloads } = await proposeChild(this.sa, this.policy, {
      first: false,
      ...(this.rekeyOf ? { rekeyOf: this.rekeyOf } : {}),
    });
    this.offer = offer;
    return { exchange: EXCHANGE.CREATE_CHILD_SA, payloads };
  }

  async onResponse(msg: InboundMessage<Payload>): Promise<TaskOutcome> {
    const offer = this.offer;
    if (!offer) return { kind: 'failed', reason: 'no offer' };
    const res = await completeChild(this.sa, offer, msg.payloads, false);
    // Refused a response that was not an error: the peer may have made a pair for it.
    if (!res.ok && !errorNotify(msg.payloads)) void this.sa.tm.enqueue(new DeleteRefusedChildTask([offer.spiIn]));
    this.done(res);
    return res.ok ? { kind: 'done' } : { kind: 'failed', reason: res.message };
  }

  onAbort(reason: 'timeout' | 'destroyed'): void {
    if (this.offer) {
      void this.sa.env.kernel
        .deleteSa({ dst: this.sa.local.addr, spi: this.offer.spiIn, proto: 'esp' })
        .catch(() => {});
    }
    this.done({ ok: false, code: reason === 'timeout' ? 'TIMEOUT' : 'ABORTED', message: `CREATE_CHILD_SA ${reason}` });
  }
}

/** Responder: CREATE_CHILD_SA for a new Child SA or a Child SA rekey (IKE SA rekey lives in ike-rekey.ts). */
export async function respondCreateChild(sa: IkeSa, msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
  const reply = (payloads: Payload[]) => ({ exchange: EXCHANGE.CREATE_CHILD_SA, payloads });
  if (sa.state !== 'established' && sa.state !== 'rekeying') return reply([P.notify(N.TEMPORARY_FAILURE)]);
  const saP = msg.payloads.find(isSa);
  if (saP?.proposals.some((p) => p.protocolId === PROTOCOL.IKE)) return sa.respondIkeRekey(msg);
  const rekey = findNotify(msg.payloads, N.REKEY_SA);
  let rekeyOf: ChildSa | undefined;
  if (rekey) {
    const spi = rekey.spi.length === 4 ? rekey.spi.readUInt32BE(0) : -1;
    rekeyOf = [...sa.children.values()].find((c) => c.spiOut === spi && c.state !== 'destroyed');
    if (!rekeyOf) return reply([P.notify(N.CHILD_SA_NOT_FOUND, Buffer.alloc(0), PROTOCOL.ESP, rekey.spi)]);
    const collision = sa.childRekeyCollision(rekeyOf);
    if (collision) return reply([P.notify(collision)]);
  }
  const res = await respondChild(sa, msg.payloads, { first: false, ...(rekeyOf ? { rekeyOf } : {}) });
  if (res.child && rekeyOf) sa.childReplaced(rekeyOf, res.child, 'responder');
  return reply(res.payloads);
}
