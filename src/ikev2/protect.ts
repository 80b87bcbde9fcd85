import type { IkeSaKeys } from '../crypto/ikev2/keys.js';
import type { RandomSource } from '../crypto/random.js';
import { createSkCipher, type SkCipher } from '../crypto/sk.js';
import type { IkeSuite } from '../sa/proposal.js';
import { MalformedMessageError } from '../wire/errors.js';
import {
  decodePayloadChain,
  EXCHANGE,
  encodeMessage,
  encodePayloadChain,
  encodeSkfPrefix,
  encodeSkPrefix,
  FragmentReassembler,
  IKE_HEADER_LENGTH,
  type IkeHeader,
  isSk,
  isSkf,
  type Payload,
  SKF_HEADER_LENGTH,
  splitForFragments,
} from '../wire/ikev2/index.js';

/** Outcome of opening a protected message: payloads, a fragment still pending, or a drop. */
export type Opened =
  | { kind: 'payloads'; payloads: Payload[] }
  | { kind: 'fragment-pending' }
  | { kind: 'drop'; reason: string };

export interface HeaderFields {
  spiI: Buffer;
  spiR: Buffer;
  exchangeType: number;
  messageId: number;
  /** We are the original initiator of this IKE SA (I flag). */
  initiator: boolean;
  response: boolean;
}

/**
 * a | b in a backing store of its own: sent datagrams are kept for
 * retransmission (the last response for the SA's lifetime), and a pooled
 * Buffer.concat would pin an 8 KiB pool slab per SA.
 */
function joined(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafeSlow(a.length + b.length);
  a.copy(out, 0);
  b.copy(out, a.length);
  return out;
}

export function headerOf(f: HeaderFields): IkeHeader {
  return {
    spiI: f.spiI,
    spiR: f.spiR,
    nextPayload: 0,
    majorVersion: 2,
    minorVersion: 0,
    exchangeType: f.exchangeType,
    flags: { initiator: f.initiator, response: f.response, higherVersion: false },
    messageId: f.messageId,
    length: 0,
  };
}

/**
 * Protects and unprotects the messages of one IKE SA: SK payloads with the
 * negotiated cipher, RFC 7383 fragments when the message exceeds the
 * configured size and the peer supports fragmentation.
 */
export class MessageProtector {
  private readonly out: SkCipher;
  private readonly in: SkCipher;
  /** One reassembler per direction of traffic (requests, responses), keyed by message ID. */
  private reassemblyMap: Map<string, { id: number; r: FragmentReassembler }> | undefined;
  /** Made on the first fragment: most SAs never receive one. */
  private get reassembly(): Map<string, { id: number; r: FragmentReassembler }> {
    this.reassemblyMap ??= new Map();
    return this.reassemblyMap;
  }

  constructor(suite: IkeSuite, keys: IkeSaKeys, originalInitiator: boolean, random?: RandomSource) {
    const mk = (encKey: Buffer, integKey: Buffer) =>
      createSkCipher({
        encr: suite.encr.id,
        ...(suite.encr.keyLen !== undefined ? { keyLen: suite.encr.keyLen } : {}),
        ...(suite.integ !== undefined ? { integ: suite.integ, integKey } : {}),
        encKey,
        ...(random ? { randomBytes: random } : {}),
      });
    const iToR = mk(keys.skEi, keys.skAi);
    const rToI = mk(keys.skEr, keys.skAr);
    this.out = originalInitiator ? iToR : rToI;
    this.in = originalInitiator ? rToI : iToR;
  }

  /** Encodes one message; several datagrams when `fragmentSize` (0 = never) is exceeded. */
  seal(f: HeaderFields, payloads: readonly Payload[], fragmentSize: number): Buffer[] {
    const header = headerOf(f);
    const inner = encodePayloadChain(payloads);
    const sealedLen = this.out.sealedLength(inner.bytes.length);
    const whole = IKE_HEADER_LENGTH + 4 + sealedLen;
    if (fragmentSize <= 0 || whole <= fragmentSize || f.exchangeType === EXCHANGE.IKE_SA_INIT) {
      const prefix = encodeSkPrefix(header, [], inner.firstType, sealedLen);
      return [this.sealMessage(prefix, inner.bytes)];
    }
    // Plaintext per fragment so each datagram stays within fragmentSize.
    const budget = fragmentSize - IKE_HEADER_LENGTH - SKF_HEADER_LENGTH - this.out.overhead - 16;
    const parts = splitForFragments(inner.firstType, inner.bytes, Math.max(64, budget));
    return parts.map((part, i) => {
      const bodyLen = this.out.sealedLength(part.length);
      const prefix = encodeSkfPrefix(header, i + 1, parts.length, inner.firstType, bodyLen);
      return this.sealMessage(prefix, part);
    });
  }

  private sealMessage(prefix: Buffer, plaintext: Buffer): Buffer {
    return this.out.sealMessage
      ? this.out.sealMessage(prefix, plaintext)
      : joined(prefix, this.out.seal(prefix, plaintext));
  }

  /**
   * Verifies and decrypts a decoded message whose last payload is SK or SKF.
   * `raw` is the whole datagram (after any non-ESP marker).
   */
  open(raw: Buffer, header: IkeHeader, outer: readonly Payload[]): Opened {
    const last = outer[outer.length - 1];
    if (!last || !(isSk(last) || isSkf(last))) return { kind: 'drop', reason: 'message is not encrypted' };
    const prefix = raw.subarray(0, raw.length - last.body.length);
    const plain = this.in.open(prefix, last.body);
    if (!plain) return { kind: 'drop', reason: 'integrity check failed' };
    let innerFirst: number;
    let bytes: Buffer;
    // Decrypted here, private to this message: the decoder may keep views into it.
    let owned = false;
    if (isSk(last)) {
      innerFirst = last.innerFirstPayload;
      bytes = plain;
      owned = true;
    } else {
      const key = header.flags.response ? 'resp' : 'req';
      let slot = this.reassembly.get(key);
      if (!slot || slot.id !== header.messageId) {
        slot = { id: header.messageId, r: new FragmentReassembler() };
        this.reassembly.set(key, slot);
      }
      const res = slot.r.add({
        fragmentNumber: last.fragmentNumber,
        totalFragments: last.totalFragments,
        innerFirstPayload: last.innerFirstPayload,
        plaintext: plain,
      });
      if (res.status === 'rejected') return { kind: 'drop', reason: `fragment rejected: ${res.reason}` };
      if (res.status !== 'complete') return { kind: 'fragment-pending' };
      this.reassembly.delete(key);
      innerFirst = res.innerFirstPayload;
      bytes = res.bytes;
    }
    try {
      return { kind: 'payloads', payloads: decodePayloadChain(bytes, innerFirst, 'SK', owned) };
    } catch (err) {
      if (err instanceof MalformedMessageError)
        return { kind: 'drop', reason: `malformed encrypted payloads: ${err.message}` };
      throw err;
    }
  }
}

/** IKE_SA_INIT and other plaintext messages. */
export function encodePlain(f: HeaderFields, payloads: readonly Payload[]): Buffer {
  return encodeMessage(headerOf(f), payloads);
}
