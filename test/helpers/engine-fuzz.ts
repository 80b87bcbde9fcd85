/**
 * What the engine fuzzes (test/fuzz/ikev2-engine.test.ts, ikev1-engine.test.ts) share:
 * - the mutations: one change to a message's payload chain, as a peer that holds the keys
 *   could make it before it protects the message. Byte level (bit flips, boundary bytes,
 *   truncation, a payload length or the first payload type) or payload level (a payload
 *   dropped, duplicated, swapped, or taken from an earlier message of any exchange);
 * - the checks on a node afterwards: kernel SAs against the engine's Child SAs, Child SAs
 *   against the other node's, and exceptions that escaped the engine.
 */
import type { ChildSa } from '../../src/ikev2/child-sa.js';
import type { EngineEvent } from '../../src/ikev2/env.js';
import type { MemoryKernel } from '../../src/kernel/memory/memory-kernel.js';
import { mulberry32 } from './pair-base.js';

export function prng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]! };
}
export type Rng = ReturnType<typeof prng>;

export interface Mutated {
  /** The type of the chain's first payload (the header's or SK's next payload field). */
  firstType: number;
  bytes: Buffer;
  how: string;
}

/**
 * One mutation of `payloads`. `corpus` holds payloads of earlier messages (spliced in as
 * foreign payloads); `encode` is the version's chain encoder; `junkTypes` the first payload
 * types random bytes in an empty message are given (besides a random one).
 */
export function mutateChain<P extends { type: number }>(
  rng: Rng,
  payloads: readonly P[],
  corpus: readonly P[],
  encode: (ps: readonly P[]) => { firstType: number; bytes: Buffer },
  junkTypes: readonly number[],
): Mutated {
  if (payloads.length === 0) {
    // An empty message (liveness): something foreign in it, or random bytes.
    if (corpus.length > 0 && rng.next() < 0.7) {
      const foreign = rng.pick(corpus);
      return { ...encode([foreign]), how: `foreign payload type ${foreign.type} in an empty message` };
    }
    const n = 1 + rng.int(40);
    const junk = Buffer.from(Array.from({ length: n }, () => rng.int(256)));
    return {
      firstType: rng.pick([...junkTypes, rng.int(256)]),
      bytes: junk,
      how: `${n} random bytes in an empty message`,
    };
  }
  const op = rng.int(8);
  if (op <= 3) {
    // Byte level on the encoded chain.
    const { firstType, bytes } = encode(payloads);
    const b = Buffer.from(bytes);
    if (b.length === 0) return { firstType, bytes: b, how: 'empty chain' };
    if (op === 0) {
      const n = 1 + rng.int(4);
      for (let i = 0; i < n; i++) {
        const at = rng.int(b.length);
        b[at] = b[at]! ^ (1 << rng.int(8));
      }
      return { firstType, bytes: b, how: `${n} bit flips` };
    }
    if (op === 1) {
      const at = rng.int(b.length);
      b[at] = rng.pick([0, 0xff, 0x80, 0x7f, 1, rng.int(256)]);
      return { firstType, bytes: b, how: `byte ${at} set to ${b[at]}` };
    }
    if (op === 2) {
      const len = rng.int(b.length);
      return { firstType, bytes: b.subarray(0, len), how: `truncated to ${len}` };
    }
    // A payload length field (bytes 2-3 of a generic header) at a payload boundary.
    let at = 0;
    const hops = rng.int(payloads.length);
    for (let i = 0; i < hops && at + 4 <= b.length; i++) at += b.readUInt16BE(at + 2) || 4;
    if (at + 4 <= b.length) b.writeUInt16BE(rng.pick([0, 1, 3, 4, 5, 0xffff, rng.int(0x10000)]), at + 2);
    return { firstType: rng.next() < 0.2 ? rng.int(256) : firstType, bytes: b, how: 'payload length or first type' };
  }
  const ps = [...payloads];
  const i = rng.int(ps.length);
  if (op === 4) {
    ps.splice(i, 1);
    return { ...encode(ps), how: `payload ${i} dropped` };
  }
  if (op === 5) {
    ps.splice(i, 0, ps[i]!);
    return { ...encode(ps), how: `payload ${i} duplicated` };
  }
  if (op === 6 && ps.length > 1) {
    const j = rng.int(ps.length);
    [ps[i], ps[j]] = [ps[j]!, ps[i]!];
    return { ...encode(ps), how: `payloads ${i} and ${j} swapped` };
  }
  if (corpus.length === 0) return { ...encode(ps), how: 'unchanged' };
  const foreign = rng.pick(corpus);
  if (rng.next() < 0.5) ps[i] = foreign;
  else ps.splice(rng.int(ps.length + 1), 0, foreign);
  return { ...encode(ps), how: `foreign payload type ${foreign.type}` };
}

/** A Child SA (phase 2 SA) a node's engine holds, with the addresses of its IKE SA; `key` says which IKE SA, where that matters. */
export interface HeldChild {
  child: ChildSa;
  local: string;
  remote: string;
  key?: string;
}

/**
 * Every ESP SA in the node's kernel belongs to a Child SA its engine holds; installed ones
 * have both of their SAs. With `larvalOk` (an exchange is under way that reserved an SPI)
 * SPIs reserved but not keyed yet are not counted.
 */
export async function kernelProblems(
  name: string,
  kernel: MemoryKernel,
  held: readonly HeldChild[],
  larvalOk = false,
): Promise<string[]> {
  const problems: string[] = [];
  const known = new Set<string>();
  for (const { child: c, local, remote } of held) {
    if (c.state === 'destroyed') continue;
    known.add(`${local}|${c.spiIn}`);
    known.add(`${remote}|${c.spiOut}`);
  }
  const inKernel = await kernel.listSas();
  const have = new Set(inKernel.map((s) => `${s.dst}|${s.spi}`));
  // (A memory kernel's larval SA, from allocSpi, has an empty cipher name.)
  const keyed = (s: (typeof inKernel)[number]) =>
    ('crypt' in s.algorithms && s.algorithms.crypt.name !== '') || 'aead' in s.algorithms;
  for (const s of inKernel)
    if (!known.has(`${s.dst}|${s.spi}`) && !(larvalOk && !keyed(s)))
      problems.push(`${name}: kernel SA ${s.dst} spi ${s.spi} belongs to no Child SA`);
  for (const { child: c, local, remote } of held) {
    if (c.state !== 'installed') continue;
    if (!have.has(`${local}|${c.spiIn}`)) problems.push(`${name}: child ${c.name} lacks inbound SA ${c.spiIn}`);
    if (!have.has(`${remote}|${c.spiOut}`)) problems.push(`${name}: child ${c.name} lacks outbound SA ${c.spiOut}`);
  }
  return problems;
}

/**
 * Each live Child SA one node holds has its counterpart (SPIs crossed, and the same `key`)
 * at the other: an exchange one side gave up on must not leave a Child SA only the other
 * side holds (it would carry nothing until it expired).
 */
export function agreementProblems(
  a: { name: string; held: readonly HeldChild[] },
  b: { name: string; held: readonly HeldChild[] },
): string[] {
  const problems: string[] = [];
  const live = (xs: readonly HeldChild[]) =>
    xs.filter((x) => x.child.state === 'installed' || x.child.state === 'rekeying');
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    const theirs = live(y.held);
    for (const { child: c, key } of live(x.held))
      if (!theirs.some((o) => o.key === key && o.child.spiIn === c.spiOut && o.child.spiOut === c.spiIn))
        problems.push(
          `${x.name}: child ${c.name} (in ${c.spiIn}, out ${c.spiOut})${key ? ` on IKE SA ${key}` : ''} has no counterpart at ${y.name}`,
        );
  }
  return problems;
}

/** Error logs: an exception escaped a message handler or the receive path. */
export function escapedErrors(node: { name: string; events: readonly EngineEvent[] }): string[] {
  return node.events
    .filter((e) => e.type === 'log.error')
    .map(
      (e) =>
        `${node.name}: ${String((e as { message?: unknown }).message)} ${String((e as { error?: unknown }).error ?? '')
          .split('\n')
          .slice(0, 3)
          .join(' | ')}`,
    );
}

/** Behind a NAT every ESP SA must be UDP-encapsulated (RFC 3948): one that is not carries nothing through it. */
export async function encapProblems(name: string, kernel: MemoryKernel): Promise<string[]> {
  return (await kernel.listSas())
    .filter((s) => !s.encap)
    .map((s) => `${name}: kernel SA ${s.dst} spi ${s.spi} is not UDP-encapsulated although the peers are behind a NAT`);
}
