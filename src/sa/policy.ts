import type { RetransmitSchedule } from '../ikev2/retransmit.js';
import type { Identity } from './identity.js';
import type { EspProposalSpec, IkeProposalSpec } from './proposal.js';
import type { TrafficSelector } from './traffic-selector.js';

/**
 * The engine's view of one configured peer: what the config loader compiles
 * a peer file (plus mesh defaults) into. Durations are milliseconds.
 */
export type DeadPeerAction = 'clear' | 'trap' | 'restart';
export type StartAction = 'none' | 'now' | 'trap';

export interface ChildPolicy {
  name: string;
  mode: 'tunnel' | 'transport';
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  espProposals: EspProposalSpec[];
  lifetimeMs: number;
  rekeyMarginMs: number;
}

export type AuthPolicy =
  | { kind: 'psk'; secret: Buffer }
  | {
      kind: 'pubkey';
      /** Our certificate chain, leaf first, DER. */
      certs: Buffer[];
      /** PEM or DER private key (a node:crypto KeyObject is created from it). */
      privateKey: import('node:crypto').KeyObject;
      /** Trust anchors, DER. */
      cas: Buffer[];
    };

export interface PeerPolicy {
  name: string;
  version: 1 | 2;
  remoteAddress: string;
  remotePort: number;
  localAddress?: string;
  localId: Identity;
  remoteId: Identity;
  auth: AuthPolicy;
  ikeProposals: IkeProposalSpec[];
  ikeLifetimeMs: number;
  rekeyMarginMs: number;
  /** Fraction of the margin randomised away (0..1). */
  rekeyJitter: number;
  children: ChildPolicy[];
  dpdDelayMs: number;
  dpdTimeoutMs: number;
  dpdAction: DeadPeerAction;
  start: StartAction;
  retransmit: RetransmitSchedule;
  /** Cap of the re-initiation backoff after failures (restart action). */
  restartBackoffMaxMs: number;
  natKeepaliveMs: number;
  fragmentation: boolean;
  fragmentSize: number;
  /** Announce SIGNATURE_HASH_ALGORITHMS (RFC 7427) in IKE_SA_INIT; default true. */
  signatureHashes?: boolean;
  /** Send CERTREQ for our CAs when authenticating with certificates; default true. */
  sendCertReq?: boolean;
  /** IKEv1 only: allow (initiate and answer) Aggressive Mode with PSK; off by default. */
  aggressive?: boolean;
}
