import { EXCHANGE, isDelete, type Payload, PROTOCOL } from '../../wire/ikev2/index.js';
import type { ChildSa } from '../child-sa.js';
import type { IkeSa } from '../ike-sa.js';
import { P } from '../payloads.js';
import type { RetransmitSchedule } from '../retransmit.js';
import type { InboundMessage, InitiatorTask, OutboundMessage, TaskOutcome } from '../task-manager.js';

/** Empty INFORMATIONAL request: a liveness check with its own short retransmit schedule. */
export class LivenessTask implements InitiatorTask<Payload> {
  readonly name = 'liveness';
  constructor(
    readonly retransmit: RetransmitSchedule,
    private readonly result: (alive: boolean) => void,
  ) {}
  build(): OutboundMessage<Payload> {
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [] };
  }
  onResponse(): TaskOutcome {
    this.result(true);
    return { kind: 'done' };
  }
  onAbort(): void {
    this.result(false);
  }
}

/** Deletes Child SAs we own (our inbound SPIs); the peer answers with theirs. */
export class DeleteChildTask implements InitiatorTask<Payload> {
  readonly name: string;
  constructor(
    private readonly sa: IkeSa,
    private readonly children: ChildSa[],
    private readonly done?: () => void,
  ) {
    this.name = `child-delete:${children.map((c) => c.uid).join(',')}`;
  }
  build(): OutboundMessage<Payload> {
    for (const c of this.children)
      if (c.state !== 'deleting' && c.state !== 'destroyed') this.sa.transitionChild(c, 'deleting', 'delete sent');
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [P.deleteEsp(this.children.map((c) => c.spiIn))] };
  }
  async onResponse(): Promise<TaskOutcome> {
    for (const c of this.children) await this.sa.removeChild(c, 'deleted by us');
    this.done?.();
    return { kind: 'done' };
  }
  onAbort(): void {
    // Timeout or teardown: remove locally all the same (the IKE SA handles dead peers).
    void this.sa.queue.run(async () => {
      for (const c of this.children) await this.sa.removeChild(c, 'delete unanswered');
    });
    this.done?.();
  }
}

/**
 * Deletes a pair the peer made in an exchange whose response we refused (a Child SA we
 * never installed): a Delete naming the inbound SPI we offered, so the peer removes the
 * pair it keyed to it (RFC 7296 1.4.1: it finds its pair by our SPI). A peer that made
 * nothing ignores the unknown SPI.
 */
export class DeleteRefusedChildTask implements InitiatorTask<Payload> {
  readonly name: string;
  constructor(private readonly spis: number[]) {
    this.name = `child-delete-refused:${spis.join(',')}`;
  }
  build(): OutboundMessage<Payload> {
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [P.deleteEsp(this.spis)] };
  }
  onResponse(): TaskOutcome {
    return { kind: 'done' };
  }
  onAbort(): void {
    // Nothing of ours to remove: the peer's pair expires on its own if the Delete never arrives.
  }
}

/** Deletes the whole IKE SA (and with it every Child SA). */
export class DeleteIkeTask implements InitiatorTask<Payload> {
  readonly name = 'ike-delete';
  constructor(
    private readonly sa: IkeSa,
    private readonly reason: string,
    readonly retransmit?: RetransmitSchedule,
  ) {}
  build(): OutboundMessage<Payload> {
    if (this.sa.state !== 'deleting') this.sa.transition('deleting', this.reason);
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [P.deleteIke()] };
  }
  async onResponse(): Promise<TaskOutcome> {
    await this.sa.destroy(this.reason);
    return { kind: 'done' };
  }
  onAbort(reason: 'timeout' | 'destroyed'): void {
    if (reason === 'timeout') void this.sa.queue.run(() => this.sa.destroy(`${this.reason} (delete unanswered)`));
  }
}

/** Responder side of INFORMATIONAL: deletes, and empty liveness checks. */
export async function respondInformational(sa: IkeSa, msg: InboundMessage<Payload>): Promise<OutboundMessage<Payload>> {
  const out: Payload[] = [];
  const deletes = msg.payloads.filter(isDelete);
  if (deletes.some((d) => d.protocolId === PROTOCOL.IKE)) {
    // RFC 7296 1.4.1: answer with an empty INFORMATIONAL, then the SA is gone.
    sa.host.onPeerDeleting?.(sa);
    void sa.queue.run(async () => {
      await sa.destroy('deleted by peer');
      sa.host.onPeerDelete(sa);
    });
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [] };
  }
  const ours: number[] = [];
  for (const d of deletes) {
    if (d.protocolId !== PROTOCOL.ESP || d.spiSize !== 4) continue;
    for (const spi of d.spis) {
      const peerSpi = spi.readUInt32BE(0);
      const child = [...sa.children.values()].find((c) => c.spiOut === peerSpi);
      if (!child) continue;
      // If we are deleting it too (simultaneous delete), it is not included in our answer (RFC 7296 1.4.1).
      if (child.state !== 'deleting') ours.push(child.spiIn);
      await sa.removeChild(child, 'deleted by peer');
      // The peer refused our answer to its rekey: the pair it replaced carries traffic again.
      sa.restoreReplaced(child);
    }
  }
  if (ours.length) out.push(P.deleteEsp(ours));
  return { exchange: EXCHANGE.INFORMATIONAL, payloads: out };
}
