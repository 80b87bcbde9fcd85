/**
 * Encryption of ISAKMP message bodies under an ISAKMP SA, with the CBC IV
 * chained per exchange (RFC 2409 Appendix B, RFC 2408 section 3.1):
 *
 * - message ID 0 (Main/Aggressive Mode) starts at hash(g^xi | g^xr);
 * - any other message ID starts at hash(last phase-1 CBC block | M-ID), the
 *   phase-1 block being the current IV of message ID 0 when the exchange is
 *   first seen;
 * - the IV of the next message of an exchange is the last ciphertext block of
 *   the previous message of that exchange, whichever side sent it.
 *
 * Padding: `encrypt` pads with zero octets up to the block size and adds no
 * pad-length octet (as strongSwan does; RFC 2408 allows any padding and
 * leaves the ISAKMP header length to count it). A plaintext that is already
 * a block multiple gets no padding. `decrypt` returns every decrypted octet,
 * padding included, so it accepts any padding convention; use
 * `payloadChainLength` to find where the payload chain ends.
 *
 * Retransmissions: never re-encrypt a message you are retransmitting, that
 * would advance the IV; resend `lastSent(messageId)` unchanged. A received
 * message that is byte-identical to one already decrypted in the same
 * exchange is decrypted again with the IV it was first decrypted with, and
 * the IV state is left alone (`isRetransmission` tells the caller so it can
 * resend its reply instead of processing it again). If a freshly decrypted
 * message then fails authentication, `rollback(messageId)` restores the IV
 * as it was before it, so a forged packet cannot desynchronise the exchange.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CoatiError } from '../../errors.js';
import { phase1Iv, phase2Iv } from './iv.js';
import type { CbcCipherSpec, HashFn } from './primitives.js';

export interface Phase1CryptoOptions {
  readonly cipher: CbcCipherSpec;
  /** Ka. Copied; the copy is zeroed by `destroy()`. */
  readonly key: Buffer;
  /** The negotiated hash (unkeyed). */
  readonly hash: HashFn;
  /** g^xi and g^xr: the initiator's and responder's public DH values. */
  readonly gxi: Buffer;
  readonly gxr: Buffer;
  /** How many non-zero message IDs to keep state for; the oldest is dropped beyond it. Default 32. */
  readonly maxExchanges?: number;
}

interface Received {
  readonly ciphertext: Buffer;
  readonly ivUsed: Buffer;
}

interface Exchange {
  /** The IV for the next message of this exchange. */
  iv: Buffer;
  /** Messages decrypted in this exchange, oldest first. */
  received: Received[];
  /** The last message encrypted in this exchange. */
  lastSent?: Buffer;
  /** State before the last fresh decrypt, for `rollback`. */
  undo?: { iv: Buffer; receivedLength: number };
}

/** At most this many received messages are remembered per exchange (Quick Mode has three). */
const MAX_RECEIVED_PER_EXCHANGE = 4;

export class Phase1Crypto {
  private readonly cipher: CbcCipherSpec;
  private readonly key: Buffer;
  private readonly hash: HashFn;
  private readonly maxExchanges: number;
  private readonly exchanges = new Map<number, Exchange>();
  private destroyed = false;

  constructor(opts: Phase1CryptoOptions) {
    const { cipher } = opts;
    if (opts.key.length !== cipher.keyLen) {
      throw new CoatiError('IKEV1_BAD_KEY_LENGTH', `${cipher.nodeName} needs ${cipher.keyLen} key bytes`);
    }
    if (!Number.isInteger(cipher.blockSize) || cipher.blockSize <= 0) {
      throw new CoatiError('IKEV1_BAD_CIPHER', `invalid block size ${cipher.blockSize}`);
    }
    this.cipher = cipher;
    this.key = Buffer.from(opts.key);
    this.hash = opts.hash;
    this.maxExchanges = opts.maxExchanges ?? 32;
    this.exchanges.set(0, { iv: phase1Iv(opts.hash, opts.gxi, opts.gxr, cipher.blockSize), received: [] });
  }

  /** Encrypt a payload chain (the message body after the ISAKMP header) as the next message of the exchange. */
  encrypt(messageId: number, plaintext: Buffer): Buffer {
    const ex = this.exchange(messageId);
    const bs = this.cipher.blockSize;
    const padded = Buffer.alloc(Math.max(bs, Math.ceil(plaintext.length / bs) * bs));
    plaintext.copy(padded);
    const c = createCipheriv(this.cipher.nodeName, this.key, ex.iv).setAutoPadding(false);
    const ciphertext = Buffer.concat([c.update(padded), c.final()]);
    padded.fill(0);
    ex.iv = lastBlock(ciphertext, bs);
    ex.lastSent = ciphertext;
    ex.undo = undefined;
    return Buffer.from(ciphertext);
  }

  /** Decrypt a received message body. Retransmissions are recognised and leave the IV state alone. */
  decrypt(messageId: number, ciphertext: Buffer): Buffer {
    this.checkLive();
    const bs = this.cipher.blockSize;
    if (ciphertext.length === 0 || ciphertext.length % bs !== 0) {
      throw new CoatiError(
        'IKEV1_BAD_CIPHERTEXT_LENGTH',
        `encrypted body of ${ciphertext.length} bytes is not a positive multiple of ${bs}`,
      );
    }
    const ex = this.exchange(messageId);
    const dup = ex.received.find((r) => r.ciphertext.equals(ciphertext));
    if (dup) return this.cbcDecrypt(dup.ivUsed, ciphertext);
    const ivUsed = ex.iv;
    const plaintext = this.cbcDecrypt(ivUsed, ciphertext);
    ex.undo = { iv: ivUsed, receivedLength: ex.received.length };
    ex.received.push({ ciphertext: Buffer.from(ciphertext), ivUsed });
    if (ex.received.length > MAX_RECEIVED_PER_EXCHANGE) {
      ex.received.shift();
      ex.undo = undefined;
    }
    ex.iv = lastBlock(ciphertext, bs);
    return plaintext;
  }

  /** Whether `ciphertext` is byte-identical to a message already decrypted in this exchange. */
  isRetransmission(messageId: number, ciphertext: Buffer): boolean {
    const ex = this.exchanges.get(messageId >>> 0);
    return ex?.received.some((r) => r.ciphertext.equals(ciphertext)) ?? false;
  }

  /** The last message body encrypted in this exchange, to resend unchanged. */
  lastSent(messageId: number): Buffer | undefined {
    const sent = this.exchanges.get(messageId >>> 0)?.lastSent;
    return sent ? Buffer.from(sent) : undefined;
  }

  /** Undo the last fresh `decrypt` of this exchange (call it when the message fails authentication). */
  rollback(messageId: number): void {
    const ex = this.exchanges.get(messageId >>> 0);
    if (!ex?.undo) throw new CoatiError('IKEV1_NOTHING_TO_ROLL_BACK', `no decrypt to undo for message ID ${messageId}`);
    ex.iv = ex.undo.iv;
    ex.received.length = ex.undo.receivedLength;
    ex.undo = undefined;
  }

  /** The IV the next message of this exchange will use (a copy; it starts the exchange if new). */
  nextIv(messageId: number): Buffer {
    return Buffer.from(this.exchange(messageId).iv);
  }

  /** Drop the IV state of a finished exchange. Message ID 0 is kept: phase-2 IVs derive from it. */
  forget(messageId: number): void {
    if (messageId >>> 0 !== 0) this.exchanges.delete(messageId >>> 0);
  }

  /** Zero the key and forget every exchange. */
  destroy(): void {
    this.key.fill(0);
    this.exchanges.clear();
    this.destroyed = true;
  }

  private checkLive(): void {
    if (this.destroyed) throw new CoatiError('IKEV1_SA_DESTROYED', 'ISAKMP SA crypto state was destroyed');
  }

  private exchange(messageId: number): Exchange {
    this.checkLive();
    const mid = messageId >>> 0;
    const found = this.exchanges.get(mid);
    if (found) return found;
    const phase1 = this.exchanges.get(0);
    if (!phase1) throw new CoatiError('IKEV1_SA_DESTROYED', 'phase-1 IV state is missing');
    const ex: Exchange = { iv: phase2Iv(this.hash, phase1.iv, mid, this.cipher.blockSize), received: [] };
    this.exchanges.set(mid, ex);
    if (this.exchanges.size - 1 > this.maxExchanges) {
      for (const key of this.exchanges.keys()) {
        if (key !== 0 && key !== mid) {
          this.exchanges.delete(key);
          break;
        }
      }
    }
    return ex;
  }

  private cbcDecrypt(iv: Buffer, ciphertext: Buffer): Buffer {
    const d = createDecipheriv(this.cipher.nodeName, this.key, iv).setAutoPadding(false);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  }
}

function lastBlock(ciphertext: Buffer, blockSize: number): Buffer {
  return Buffer.from(ciphertext.subarray(ciphertext.length - blockSize));
}

/**
 * Length of the ISAKMP payload chain at the start of a decrypted body: walks
 * the generic payload headers (next payload 1, reserved 1, length 2) until one
 * says no payload follows. Whatever lies beyond is padding. Throws
 * `IKEV1_BAD_PAYLOAD_CHAIN` when a header runs past the end or a length is
 * shorter than the header.
 */
export function payloadChainLength(body: Buffer, firstPayload: number): number {
  let offset = 0;
  let next = firstPayload;
  while (next !== 0) {
    if (offset + 4 > body.length) {
      throw new CoatiError('IKEV1_BAD_PAYLOAD_CHAIN', `payload header at ${offset} runs past ${body.length}`);
    }
    const len = body.readUInt16BE(offset + 2);
    if (len < 4 || offset + len > body.length) {
      throw new CoatiError('IKEV1_BAD_PAYLOAD_CHAIN', `payload at ${offset} has bad length ${len}`);
    }
    next = body[offset] ?? 0;
    offset += len;
  }
  return offset;
}
