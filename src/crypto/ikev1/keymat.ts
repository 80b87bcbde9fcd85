/**
 * Quick Mode KEYMAT (RFC 2409 section 5.5), computed once per SPI, i.e. once
 * per direction:
 *   K1 = prf(SKEYID_d, [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
 *   Kn = prf(SKEYID_d, Kn-1 | [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
 *   KEYMAT = K1 | K2 | ... truncated to `length`
 * The caller splits KEYMAT into the encryption key then the integrity key.
 */
import { CoatiError } from '../../errors.js';
import { octet, type PrfFn, uint32be } from './primitives.js';

export interface QuickModeKeymatInput {
  readonly prf: PrfFn;
  readonly skeyidD: Buffer;
  /** The IPsec protocol ID of the SA (PROTO_IPSEC_AH 2, PROTO_IPSEC_ESP 3, PROTO_IPCOMP 4). */
  readonly protocol: number;
  /** The SPI of the SA this KEYMAT is for: a number, or its 4 bytes in network order. */
  readonly spi: number | Buffer;
  /** Ni_b and Nr_b: the Quick Mode nonce payload bodies. */
  readonly ni: Buffer;
  readonly nr: Buffer;
  /** g(qm)^xy when Quick Mode did a Diffie-Hellman exchange (PFS). */
  readonly sharedSecret?: Buffer;
  /** Bytes of KEYMAT wanted (encryption key length + integrity key length). */
  readonly length: number;
}

export function quickModeKeymat(input: QuickModeKeymatInput): Buffer {
  const { prf, skeyidD, length } = input;
  if (!Number.isInteger(length) || length <= 0) {
    throw new CoatiError('IKEV1_BAD_KEY_LENGTH', `invalid KEYMAT length ${length}`);
  }
  if (!Number.isInteger(input.protocol) || input.protocol < 0 || input.protocol > 0xff) {
    throw new CoatiError('IKEV1_BAD_PROTOCOL', `invalid protocol ID ${input.protocol}`);
  }
  const spi = typeof input.spi === 'number' ? uint32be(input.spi) : input.spi;
  if (spi.length !== 4) throw new CoatiError('IKEV1_BAD_SPI', `an IPsec SPI is 4 bytes, got ${spi.length}`);
  const seed = Buffer.concat([input.sharedSecret ?? Buffer.alloc(0), octet(input.protocol), spi, input.ni, input.nr]);
  const blocks: Buffer[] = [];
  let produced = 0;
  let prev: Buffer = Buffer.alloc(0);
  while (produced < length) {
    prev = prf(skeyidD, Buffer.concat([prev, seed]));
    if (prev.length === 0) throw new CoatiError('IKEV1_BAD_PRF', 'prf returned no output');
    blocks.push(prev);
    produced += prev.length;
  }
  const all = Buffer.concat(blocks);
  const keymat = Buffer.from(all.subarray(0, length));
  all.fill(0);
  for (const b of blocks) b.fill(0);
  seed.fill(0);
  return keymat;
}
