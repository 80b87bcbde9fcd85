import type { DirectionKeys } from '../crypto/ikev2/keys.js';
import { espSaAlgorithms } from '../crypto/transforms.js';
import type { KernelIpsec, PolicySpec, SaSpec } from '../kernel/types.js';
import type { EspSuite } from '../sa/proposal.js';
import type { ChildState } from '../sa/state.js';
import { rangeToPrefixes, type TrafficSelector } from '../sa/traffic-selector.js';
import type { Timer } from '../util/clock.js';
import type { Endpoint } from './env.js';
import type { PolicyBook } from './policy-book.js';

/** One negotiated Child SA pair (inbound + outbound ESP SA). */
export interface ChildSa {
  uid: string;
  /** Name of the configured child it realises. */
  name: string;
  state: ChildState;
  reqid: number;
  mode: 'tunnel' | 'transport';
  spiIn: number;
  spiOut: number;
  suite: EspSuite;
  localTs: TrafficSelector[];
  remoteTs: TrafficSelector[];
  encap: boolean;
  /**
   * IKEv1 transport mode under NAT: the peer's original address from its NAT-OA, kept as the
   * inbound SA's encap OA (what the peer's transport checksums were computed over; RFC 3948 3.1.2).
   */
  natOa?: string;
  keysIn: DirectionKeys;
  keysOut: DirectionKeys;
  createdAt: number;
  rekeyAt: number;
  expireAt: number;
  /** Inbound byte counter at the last liveness look (ESP received counts as liveness). */
  inBytesSeen?: bigint;
  /** Lowest nonce of the exchange that created it (rekey collisions, RFC 7296 2.8.1). */
  minNonce: Buffer;
  /** Set on the old SA once a rekey replaced it. */
  replacedBy?: string;
  /**
   * Where the outbound SA is, when not at the IKE SA's remote address: the peer's NAT
   * mapping moved to another address, so the pair is re-keyed there, and this one's
   * outbound SA goes from here when it goes.
   */
  outDst?: string;
  /** Whether we initiated the exchange that created it (IKEv1: who deletes a crossing-streams duplicate). */
  initiator?: boolean;
  timers: { rekey?: Timer; expire?: Timer };
}

export function spiHex(spi: number): string {
  return spi.toString(16).padStart(8, '0');
}

function algorithms(child: ChildSa, keys: DirectionKeys) {
  return espSaAlgorithms({
    encr: child.suite.encr.id,
    ...(child.suite.encr.keyLen !== undefined ? { keyBits: child.suite.encr.keyLen } : {}),
    ...(child.suite.integ !== undefined ? { integ: child.suite.integ, integKey: keys.integKey } : {}),
    encKey: keys.encKey,
  });
}

export function inboundSaSpec(child: ChildSa, local: Endpoint, remote: Endpoint): SaSpec {
  return {
    src: remote.addr,
    dst: local.addr,
    spi: child.spiIn,
    proto: 'esp',
    mode: child.mode,
    reqid: child.reqid,
    algorithms: algorithms(child, child.keysIn),
    ...(child.encap
      ? { encap: { sport: remote.port, dport: local.port, ...(child.natOa ? { oa: child.natOa } : {}) } }
      : {}),
    replayWindow: 128,
    esn: child.suite.esn,
  };
}

export function outboundSaSpec(child: ChildSa, local: Endpoint, remote: Endpoint): SaSpec {
  return {
    src: local.addr,
    dst: remote.addr,
    spi: child.spiOut,
    proto: 'esp',
    mode: child.mode,
    reqid: child.reqid,
    algorithms: algorithms(child, child.keysOut),
    ...(child.encap ? { encap: { sport: local.port, dport: remote.port } } : {}),
    replayWindow: 0,
    esn: child.suite.esn,
  };
}

function prefixLen(p: string): number {
  return Number(p.split('/')[1]);
}

/**
 * Kernel policies for a child: out (local -> remote) plus in and fwd for each
 * selector pair. More specific selectors get a smaller (= preferred) priority,
 * relative to the policy book's band.
 */
export function childPolicies(args: {
  reqid: number;
  mode: 'tunnel' | 'transport';
  localTs: readonly TrafficSelector[];
  remoteTs: readonly TrafficSelector[];
  local: string;
  remote: string;
}): PolicySpec[] {
  const out: PolicySpec[] = [];
  for (const l of args.localTs) {
    for (const r of args.remoteTs) {
      if (l.family !== r.family) continue;
      const proto = l.proto || r.proto;
      for (const lp of rangeToPrefixes(l)) {
        for (const rp of rangeToPrefixes(r)) {
          const priority = (l.family === 4 ? 64 : 256) - prefixLen(lp) - prefixLen(rp) + (proto ? 0 : 1);
          const ports = (ts: TrafficSelector) => (ts.startPort === ts.endPort ? ts.startPort : 0);
          const sel = (src: string, dst: string, sp: number, dp: number) => ({
            src,
            dst,
            ...(proto ? { proto } : {}),
            ...(sp ? { srcPort: sp } : {}),
            ...(dp ? { dstPort: dp } : {}),
          });
          const tmpl = (src: string, dst: string) => [
            { src, dst, proto: 'esp' as const, mode: args.mode, reqid: args.reqid },
          ];
          out.push({
            selector: sel(lp, rp, ports(l), ports(r)),
            dir: 'out',
            action: 'allow',
            priority,
            templates: tmpl(args.local, args.remote),
          });
          for (const dir of ['in', 'fwd'] as const) {
            if (dir === 'fwd' && args.mode === 'transport') continue;
            out.push({
              selector: sel(rp, lp, ports(r), ports(l)),
              dir,
              action: 'allow',
              priority,
              templates: tmpl(args.remote, args.local),
            });
          }
        }
      }
    }
  }
  return out;
}

/** The kernel policies of a child (a negotiated pair, or a configured child's traps) between two addresses. */
export function childPoliciesFor(
  reqid: number,
  child: {
    readonly mode: 'tunnel' | 'transport';
    readonly localTs: readonly TrafficSelector[];
    readonly remoteTs: readonly TrafficSelector[];
  },
  local: string,
  remote: string,
): PolicySpec[] {
  return childPolicies({ reqid, mode: child.mode, localTs: child.localTs, remoteTs: child.remoteTs, local, remote });
}

/** Holds a pair's policies in the book (the pair is a holder until it releases them). */
export function holdChildPolicies(book: PolicyBook, child: ChildSa, local: Endpoint, remote: Endpoint): Promise<void> {
  return book.hold(child.reqid, child.uid, childPoliciesFor(child.reqid, child, local.addr, remote.addr));
}

/** Installs both SAs (inbound replaces the larval SA from SPI allocation) and holds the policies. */
export async function installChild(
  kernel: KernelIpsec,
  book: PolicyBook,
  child: ChildSa,
  local: Endpoint,
  remote: Endpoint,
): Promise<void> {
  await kernel.updateSa(inboundSaSpec(child, local, remote));
  await kernel.addSa(outboundSaSpec(child, local, remote));
  await holdChildPolicies(book, child, local, remote);
}

/** Removes both SAs (tolerating ones already gone) and releases the policies. */
export async function uninstallChild(
  kernel: KernelIpsec,
  book: PolicyBook,
  child: ChildSa,
  local: Endpoint,
  remote: Endpoint,
): Promise<void> {
  for (const id of [
    { dst: local.addr, spi: child.spiIn, proto: 'esp' as const },
    { dst: child.outDst ?? remote.addr, spi: child.spiOut, proto: 'esp' as const },
  ]) {
    if (!id.spi) continue;
    try {
      await kernel.deleteSa(id);
    } catch {
      // Gone already (expired, flushed): the goal state is reached.
    }
  }
  await book.release(child.reqid, child.uid);
}

export function destroyChildSecrets(child: ChildSa): void {
  child.timers.rekey?.cancel();
  child.timers.expire?.cancel();
  child.keysIn.destroy();
  child.keysOut.destroy();
}

/**
 * ESP received counts as inbound traffic (liveness): true when any inbound SA
 * of these children counted more bytes than at the last look. Linux sets
 * `use_time` only at the first packet, so counters are the signal.
 */
export async function inboundEspSeen(
  kernel: KernelIpsec,
  localAddr: string,
  children: Iterable<ChildSa>,
): Promise<boolean> {
  let seen = false;
  for (const c of children) {
    if (c.state !== 'installed' && c.state !== 'rekeying' && c.state !== 'rekeyed') continue;
    try {
      const info = await kernel.getSa({ dst: localAddr, spi: c.spiIn, proto: 'esp' });
      const bytes = info?.counters.bytes ?? 0n;
      if (bytes > (c.inBytesSeen ?? 0n)) {
        c.inBytesSeen = bytes;
        seen = true;
      }
    } catch {
      // Counters unavailable: the caller falls back to a probe.
    }
  }
  return seen;
}
