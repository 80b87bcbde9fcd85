import {
  type ChildSa,
  destroyChildSecrets,
  inboundEspSeen,
  outboundSaSpec,
  spiHex,
  uninstallChild,
} from '../ikev2/child-sa.js';
import type { Endpoint, EngineEnv } from '../ikev2/env.js';
import type { PolicyBook } from '../ikev2/policy-book.js';
import type { Timer } from '../util/clock.js';
import type { SerialQueue } from '../util/serial-queue.js';
import type { PeerPolicy } from './policy.js';
import { type ChildState, type IkeState, transitionChild } from './state.js';

/**
 * What an IKEv2 IKE SA and an IKEv1 ISAKMP SA have alike for the helpers below: endpoints,
 * Child SA pairs (phase 2 SAs), liveness bookkeeping, the serial queue.
 */
export interface CommonSa {
  readonly env: EngineEnv;
  readonly host: { readonly book: PolicyBook };
  readonly queue: SerialQueue;
  readonly children: Map<string, ChildSa>;
  readonly peer: PeerPolicy | undefined;
  readonly peerName: string;
  readonly state: IkeState;
  local: Endpoint;
  remote: Endpoint;
  lastInboundAt: number;
  readonly nat: { local: boolean; remote: boolean };
  transitionChild(c: ChildSa, to: ChildState, reason: string): void;
  removeChild(c: ChildSa, reason: string): Promise<void>;
}

/** Moves IKE traffic to port 4500 (NAT-T float: RFC 7296 2.23, RFC 3947 4). */
export function floatToNatT(sa: CommonSa): void {
  if (sa.local.port === 4500) return;
  sa.local = { ...sa.local, port: 4500 };
  if (sa.remote.port === 500) sa.remote = { ...sa.remote, port: 4500 };
}

/**
 * ESP received counts as inbound traffic. Linux sets `use_time` once, at the first packet,
 * so growth of an inbound SA's byte counter since the last check is what tells that the
 * peer is still sending.
 */
export async function kernelSawInbound(sa: CommonSa): Promise<boolean> {
  const seen = await inboundEspSeen(sa.env.kernel, sa.local.addr, sa.children.values());
  if (seen) sa.lastInboundAt = sa.env.clock.now();
  return seen;
}

/**
 * The next NAT-T keepalive of an SA behind a NAT (a 0xff byte after `natKeepaliveMs`),
 * or undefined when none is due; `rearm` arms the one after it.
 */
export function natKeepaliveTimer(sa: CommonSa, rearm: () => void): Timer | undefined {
  const peer = sa.peer;
  if (!peer || !sa.nat.local || peer.natKeepaliveMs <= 0) return undefined;
  return sa.env.clock.setTimer(peer.natKeepaliveMs, () => {
    if (sa.state === 'destroyed') return;
    sa.env.send({ data: Buffer.from([0xff]), local: sa.local, remote: sa.remote });
    rearm();
  });
}

/** A Child SA state change, with its `child.state` event (IKEv1's carries `version: 1`). */
export function transitionChildOf(sa: CommonSa, c: ChildSa, to: ChildState, reason: string, version?: 1): void {
  transitionChild(c, to, reason, (ch) =>
    sa.env.emit({
      type: 'child.state',
      ...(version ? { version } : {}),
      peer: sa.peerName,
      child: c.name,
      spiIn: spiHex(c.spiIn),
      spiOut: spiHex(c.spiOut),
      from: ch.from,
      to: ch.to,
      reason,
    }),
  );
}

/** Rekey (soft) and expiry (hard) timers of a Child SA; they die with it. */
export function scheduleChildTimers(sa: CommonSa, c: ChildSa, rekey: (c: ChildSa) => Promise<void> | undefined): void {
  c.timers.rekey?.cancel();
  c.timers.rekey = sa.env.clock.setTimer(c.rekeyAt - sa.env.clock.now(), () => {
    void sa.queue.run(() => rekey(c));
  });
  armChildExpiry(sa, c);
}

/** The hard lifetime timer of a Child SA: it is removed when it expires. */
export function armChildExpiry(sa: CommonSa, c: ChildSa): void {
  c.timers.expire?.cancel();
  c.timers.expire = sa.env.clock.setTimer(c.expireAt - sa.env.clock.now(), () => {
    void sa.queue.run(() => sa.removeChild(c, 'hard lifetime expired'));
  });
}

/** Removes a Child SA from the kernel and from its SA. */
export async function removeChild(sa: CommonSa, c: ChildSa, reason: string): Promise<void> {
  if (c.state === 'destroyed') return;
  await uninstallChild(sa.env.kernel, sa.host.book, c, sa.local, sa.remote);
  destroyChildSecrets(c);
  sa.children.delete(c.uid);
  sa.transitionChild(c, 'destroyed', reason);
}

/**
 * The peer's NAT mapping moved: an authentic message came from `sa.remote`, before from
 * `old`. A new port is an update of each outbound ESP-in-UDP SA. A new address is more (the
 * kernel keys an SA by its destination, and tunnel policies name the endpoints): each pair
 * is re-keyed with `rekey`, make before break, so the new one is installed at the new
 * address with its policies, and the old one goes from where it is (`outDst`).
 */
export async function followNatMapping(
  sa: CommonSa,
  old: Endpoint,
  rekey: (c: ChildSa) => Promise<void> | undefined,
  version?: 1,
): Promise<void> {
  const children = [...sa.children.values()].filter((c) => c.state !== 'destroyed');
  if (old.addr !== sa.remote.addr) {
    sa.env.log.info("peer's NAT address changed: re-keying its Child SAs at the new address", {
      peer: sa.peerName,
      from: old.addr,
      to: sa.remote.addr,
    });
    for (const c of children) {
      c.outDst ??= old.addr;
      if (c.state === 'installed' && !c.replacedBy) await rekey(c);
    }
    return;
  }
  for (const c of children) {
    // A pair left at an earlier address (its re-key will delete it there) is not moved.
    if (!c.encap || c.outDst !== undefined) continue;
    try {
      await sa.env.kernel.updateSa(outboundSaSpec(c, sa.local, sa.remote));
    } catch (err) {
      const ev = { type: 'kernel.error', peer: sa.peerName, op: 'update-sa-nat', message: String(err) };
      sa.env.emit(version ? { ...ev, version } : ev);
    }
  }
}
