import { EXCHANGE, type Payload } from '../../wire/ikev2/index.js';
import { N, P } from '../payloads.js';
import type { InitiatorTask, OutboundMessage, TaskOutcome } from '../task-manager.js';

/**
 * The initiator refused the responder's AUTH after the responder had already
 * accepted ours: tell it in a separate INFORMATIONAL (RFC 7296 2.21.2), with
 * a Delete for the IKE SA so that a peer that ignores the notify still tears
 * its half down. Sent once: our SA is destroyed right after, so neither an
 * answer nor a retransmit is waited for.
 */
export class AuthFailedNotifyTask implements InitiatorTask<Payload> {
  readonly name = 'auth-failed-notify';
  build(): OutboundMessage<Payload> {
    return { exchange: EXCHANGE.INFORMATIONAL, payloads: [P.notify(N.AUTHENTICATION_FAILED), P.deleteIke()] };
  }
  onResponse(): TaskOutcome {
    return { kind: 'done' };
  }
  onAbort(): void {}
}
