/**
 * RFC 7383 IKEv2 fragmentation, the pure wire part: splitting the plaintext
 * of an SK payload into fragment plaintexts (the engine encrypts each into an
 * SKF payload), and reassembling decrypted fragment plaintexts. No timers:
 * the caller keeps one reassembler per message ID and discards it by age.
 */
import { PAYLOAD } from './constants.js';
import { WireEncodeError } from './errors.js';

export interface FragmentLimits {
  /** Most fragments accepted for one message. */
  maxFragments: number;
  /** Most reassembled plaintext bytes for one message. */
  maxBytes: number;
}

export const DEFAULT_FRAGMENT_LIMITS: Readonly<FragmentLimits> = { maxFragments: 64, maxBytes: 64 * 1024 };

const MAX_TOTAL_FRAGMENTS = 0xffff;

/**
 * Split the inner payload chain (`innerBytes`, whose first payload is
 * `innerFirstPayload`) into plaintexts of at most `maxFragmentPlaintext` bytes.
 * Fragment i (1-based) of n is sent as SKF with Fragment Number i, Total n
 * and Next Payload `innerFirstPayload` for i = 1, zero otherwise.
 */
export function splitForFragments(
  innerFirstPayload: number,
  innerBytes: Buffer,
  maxFragmentPlaintext: number,
): Buffer[] {
  if (!Number.isInteger(innerFirstPayload) || innerFirstPayload <= PAYLOAD.NONE || innerFirstPayload > 0xff) {
    throw new WireEncodeError(`bad inner first payload type ${innerFirstPayload}`);
  }
  if (innerFirstPayload === PAYLOAD.SK || innerFirstPayload === PAYLOAD.SKF) {
    throw new WireEncodeError('an encrypted payload cannot be fragmented inside SKF');
  }
  if (!Number.isInteger(maxFragmentPlaintext) || maxFragmentPlaintext < 1) {
    throw new WireEncodeError(`bad fragment size ${maxFragmentPlaintext}`);
  }
  if (innerBytes.length === 0) throw new WireEncodeError('nothing to fragment');
  const count = Math.ceil(innerBytes.length / maxFragmentPlaintext);
  if (count > MAX_TOTAL_FRAGMENTS) throw new WireEncodeError(`${count} fragments exceed 65535`);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    out.push(Buffer.from(innerBytes.subarray(i * maxFragmentPlaintext, (i + 1) * maxFragmentPlaintext)));
  }
  return out;
}

export interface DecryptedFragment {
  fragmentNumber: number;
  totalFragments: number;
  /** The SKF Next Payload field; meaningful in fragment 1 only. */
  innerFirstPayload: number;
  plaintext: Buffer;
}

export type ReassemblyResult =
  | { status: 'incomplete'; received: number; total: number }
  | { status: 'duplicate' }
  /** Total Fragments smaller than the current one: an older transmission, discarded. */
  | { status: 'stale' }
  | { status: 'rejected'; reason: string }
  | { status: 'complete'; innerFirstPayload: number; bytes: Buffer };

/**
 * Collects the decrypted fragments of one message. A fragment with a larger
 * Total Fragments than the ones held discards them and starts over; a smaller
 * one is ignored (RFC 7383 §2.6.2). Duplicates are ignored.
 */
export class FragmentReassembler {
  private readonly limits: FragmentLimits;
  private total = 0;
  private bytes = 0;
  private first = PAYLOAD.NONE as number;
  private parts: (Buffer | undefined)[] = [];
  private received = 0;

  constructor(limits: Partial<FragmentLimits> = {}) {
    this.limits = { ...DEFAULT_FRAGMENT_LIMITS, ...limits };
  }

  /** Total Fragments of the transmission being collected (0 before the first fragment). */
  get totalFragments(): number {
    return this.total;
  }
  get receivedFragments(): number {
    return this.received;
  }
  get receivedBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.total = 0;
    this.bytes = 0;
    this.first = PAYLOAD.NONE;
    this.parts = [];
    this.received = 0;
  }

  add(f: DecryptedFragment): ReassemblyResult {
    const { fragmentNumber: num, totalFragments: total } = f;
    if (!Number.isInteger(total) || total < 1 || total > this.limits.maxFragments) {
      return { status: 'rejected', reason: `total fragments ${total} outside 1..${this.limits.maxFragments}` };
    }
    if (!Number.isInteger(num) || num < 1 || num > total) {
      return { status: 'rejected', reason: `fragment number ${num} outside 1..${total}` };
    }
    if (num === 1 && (f.innerFirstPayload === PAYLOAD.NONE || f.innerFirstPayload === PAYLOAD.SKF)) {
      return { status: 'rejected', reason: `fragment 1 has inner first payload ${f.innerFirstPayload}` };
    }
    if (total < this.total) return { status: 'stale' };
    if (total > this.total) {
      this.reset();
      this.total = total;
      this.parts = new Array<Buffer | undefined>(total).fill(undefined);
    }
    if (this.parts[num - 1] !== undefined) return { status: 'duplicate' };
    if (this.bytes + f.plaintext.length > this.limits.maxBytes) {
      this.reset();
      return { status: 'rejected', reason: `reassembled message would exceed ${this.limits.maxBytes} bytes` };
    }
    this.parts[num - 1] = Buffer.from(f.plaintext);
    this.bytes += f.plaintext.length;
    this.received++;
    if (num === 1) this.first = f.innerFirstPayload;
    if (this.received < this.total) return { status: 'incomplete', received: this.received, total: this.total };
    return { status: 'complete', innerFirstPayload: this.first, bytes: Buffer.concat(this.parts as Buffer[]) };
  }
}
