/**
 * Explicit IKE and Child SA states. Every change goes through `transition()`
 * which checks the allowed table and reports the change to an observer
 * (logging, events, metrics subscribe there). An illegal transition is a bug:
 * it throws, and the caller's per-SA queue turns it into a teardown.
 */
export const IKE_STATES = [
  'created', // initiator object exists, nothing sent
  'connecting', // IKE_SA_INIT in flight (initiator) or answered (responder)
  'authenticating', // IKE_AUTH in flight / awaited
  'established',
  'rekeying', // an IKE SA rekey is in progress on this SA
  'rekeyed', // superseded by a new IKE SA; children moved; waiting to delete
  'deleting', // Delete sent, awaiting response
  'destroyed',
] as const;
export type IkeState = (typeof IKE_STATES)[number];

export const CHILD_STATES = [
  'creating', // SPI allocated, negotiation in flight
  'installed', // kernel SAs and policies installed, carrying traffic
  'rekeying', // a rekey of this Child SA is in flight
  'rekeyed', // superseded by a new Child SA, outbound moved; waiting to delete
  'deleting',
  'destroyed',
] as const;
export type ChildState = (typeof CHILD_STATES)[number];

const IKE_ALLOWED: Record<IkeState, readonly IkeState[]> = {
  created: ['connecting', 'established', 'destroyed'], // established directly: an IKE SA made by a rekey
  connecting: ['connecting', 'authenticating', 'deleting', 'destroyed'],
  authenticating: ['established', 'deleting', 'destroyed'],
  established: ['rekeying', 'rekeyed', 'deleting', 'destroyed'],
  rekeying: ['established', 'rekeyed', 'deleting', 'destroyed'],
  rekeyed: ['deleting', 'destroyed'],
  deleting: ['destroyed'],
  destroyed: [],
};

const CHILD_ALLOWED: Record<ChildState, readonly ChildState[]> = {
  creating: ['installed', 'destroyed'],
  installed: ['rekeying', 'rekeyed', 'deleting', 'destroyed'],
  rekeying: ['installed', 'rekeyed', 'deleting', 'destroyed'],
  // installed again: the peer deleted the pair that replaced it (it refused our answer to its rekey).
  rekeyed: ['installed', 'deleting', 'destroyed'],
  deleting: ['destroyed'],
  destroyed: [],
};

export class IllegalTransitionError extends Error {
  override name = 'IllegalTransitionError';
}

export interface StateChange<S> {
  kind: 'ike' | 'child';
  from: S;
  to: S;
  reason: string;
}

interface Stateful<S> {
  state: S;
}

function move<S extends string>(
  kind: 'ike' | 'child',
  table: Record<S, readonly S[]>,
  sa: Stateful<S>,
  to: S,
  reason: string,
  observe: (c: StateChange<S>) => void,
): void {
  const from = sa.state;
  if (from === to && !table[from].includes(to)) return;
  if (!table[from].includes(to)) {
    throw new IllegalTransitionError(`${kind} SA: illegal transition ${from} -> ${to} (${reason})`);
  }
  sa.state = to;
  observe({ kind, from, to, reason });
}

export function transitionIke(
  sa: Stateful<IkeState>,
  to: IkeState,
  reason: string,
  observe: (c: StateChange<IkeState>) => void,
): void {
  move('ike', IKE_ALLOWED, sa, to, reason, observe);
}

export function transitionChild(
  sa: Stateful<ChildState>,
  to: ChildState,
  reason: string,
  observe: (c: StateChange<ChildState>) => void,
): void {
  move('child', CHILD_ALLOWED, sa, to, reason, observe);
}

export function ikeTransitionAllowed(from: IkeState, to: IkeState): boolean {
  return IKE_ALLOWED[from].includes(to);
}
