/**
 * RFC 6311 message-ID synchronisation for IKE SAs restored from a checkpoint
 * that may be behind (a crash), and the probe used when the peer lacks it.
 */
import { EXCHANGE, type Payload } from '../wire/ikev2/index.js';
import type { Resumer } from './checkpoint.js';
import type { IkeSa } from './ike-sa.js';
import { findNotify, N, P } from './payloads.js';
import type { RetransmitSchedule } from './retransmit.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from './task-manager.js';

/** RFC 6311 IKEV2_MESSAGE_ID_SYNC data: nonce(4) | next send request ID(4) | next expected receive ID(4). */
function syncData(nonce: Buffer, ids: { nextOut: number; nextIn: number }): Buffer {
  const d = Buffer.alloc(12);
  nonce.copy(d, 0, 0, 4);
  d.writeUInt32BE(ids.nextOut >>> 0, 4);
  d.writeUInt32BE(ids.nextIn >>> 0, 8);
  return d;
}

const SYNC_SCHEDULE: RetransmitSchedule = { baseMs: 1000, factor: 2, maxTimeoutMs: 4000, tries: 3, jitter: 0.1 };

/** Initiator of an RFC 6311 message-ID sync (message ID 0, outside the window). */
export class MessageIdSyncTask implements InitiatorTask<Payload> {
  readonly name = 'msgid-sync';
  readonly messageId = 0;
  readonly retransmit = SYNC_SCHEDULE;
  private nonce: Buffer = Buffer.alloc(4);
  constructor(
    private readonly sa: IkeSa,
    private readonly r: Resumer,
  ) {}
  build(): OutboundMessage<Payload> {
    this.nonce = this.sa.env.random(4);
    return {
      exchange: EXCHANGE.INFORMATIONAL,
      payloads: [P.notify(N.IKEV2_MESSAGE_ID_SYNC, syncData(this.nonce, this.sa.tm.ids))],
    };
  }
  onResponse(msg: InboundMessage<Payload>): TaskOutcome {
    const data = findNotify(msg.payloads, N.IKEV2_MESSAGE_ID_SYNC)?.data;
    if (
      msg.exchange !== EXCHANGE.INFORMATIONAL ||
      !data ||
      data.length !== 12 ||
      !data.subarray(0, 4).equals(this.nonce)
    ) {
      // Not the answer to our sync (e.g. a cached answer to an old request with ID 0).
      this.r.onFailure(this.sa, 'unusable answer to IKEV2_MESSAGE_ID_SYNC', 'exchange');
      return { kind: 'failed', reason: 'unusable message ID sync answer' };
    }
    // The peer's next request is our next inbound; what it expects next is our next outbound.
    this.sa.tm.resync({ nextOut: data.readUInt32BE(8), nextIn: data.readUInt32BE(4) });
    this.r.synced(this.sa);
    return { kind: 'done' };
  }
  onAbort(): void {}
}

/** Without RFC 6311: any authenticated answer at our restored ID proves the peer expects the next one. */
export class ResyncProbeTask implements InitiatorTask<Payload> {
  readonly name = 'msgid-probe';
  readonly retransmit = SYNC_SCHEDULE;
  constructor(
    private readonly sa: IkeSa,
    private readonly r: Resumer,
  ) {}
  build(): OutboundMessage<Payload> {
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [] };
  }
  onResponse(): TaskOutcome {
    this.r.synced(this.sa);
    return { kind: 'done' };
  }
  onAbort(): void {}
}

/** Responder side of RFC 6311 sync; called by the IKE SA before the window check. */
export async function answerMessageIdSync(sa: IkeSa, msg: InboundMessage<Payload>): Promise<void> {
  const data = findNotify(msg.payloads, N.IKEV2_MESSAGE_ID_SYNC)?.data;
  const drop = (reason: string) =>
    sa.env.emit({ type: 'packet.dropped', peer: sa.peerName, reason, from: `${sa.remote.addr}:${sa.remote.port}` });
  if (!sa.peerMsgIdSync) return drop('IKEV2_MESSAGE_ID_SYNC without IKEV2_MESSAGE_ID_SYNC_SUPPORTED');
  if (data?.length !== 12 || !sa.protector) return drop('malformed IKEV2_MESSAGE_ID_SYNC');
  if (sa.state !== 'established' && sa.state !== 'rekeying') return drop('IKEV2_MESSAGE_ID_SYNC on an SA not up');
  // Their next request is what we expect next; what they expect is our next request. Max of both views.
  sa.tm.resync({ nextOut: data.readUInt32BE(8), nextIn: data.readUInt32BE(4) });
  const ids = sa.tm.ids;
  const datagrams = sa.protector.seal(
    {
      spiI: sa.spiI,
      spiR: sa.spiR,
      exchangeType: EXCHANGE.INFORMATIONAL,
      messageId: 0,
      initiator: sa.isInitiator,
      response: true,
    },
    [P.notify(N.IKEV2_MESSAGE_ID_SYNC, syncData(data, ids))],
    0,
  );
  sa.sendDatagrams(datagrams);
  sa.env.emit({ type: 'msgid.synced', peer: sa.peerName, sa: sa.label, by: 'peer', ...ids });
}
