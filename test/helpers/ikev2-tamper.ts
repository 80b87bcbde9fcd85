/**
 * A peer that holds the keys and changes its own protected messages on the wire: decrypts
 * a datagram with the sending IKE SA's keys, lets the test change the inner payloads (or
 * their bytes), and encrypts the result again, so the receiver gets a message that passes
 * the integrity check. Used by the engine fuzz and by exchange tests of answers a peer
 * takes and we refuse.
 */
import { createSkCipher } from '../../src/crypto/sk.js';
import type { IkeSa } from '../../src/ikev2/ike-sa.js';
import { MessageProtector } from '../../src/ikev2/protect.js';
import {
  decodeMessage,
  encodePayloadChain,
  encodeSkPrefix,
  type IkeHeader,
  type Payload,
} from '../../src/wire/ikev2/index.js';
import type { Node, Wire } from './ike-pair.js';

/** The IKE SA at `node` with these SPIs (a zero responder SPI matches the half-open one). */
export function saWithSpis(node: Node, h: IkeHeader): IkeSa | undefined {
  return node.manager
    .allSas()
    .find((s) => s.spiI.equals(h.spiI) && (s.spiR.equals(h.spiR) || h.spiR.every((x) => x === 0)));
}

/** The inner payloads of a protected datagram `sender` sent, or undefined (no keys, a fragment). */
export function openSent(sender: Node, w: Wire): { header: IkeHeader; payloads: Payload[]; sa: IkeSa } | undefined {
  const msg = decodeMessage(w.data);
  const sa = saWithSpis(sender, msg.header);
  if (!sa?.keys || !sa.suite) return undefined;
  const opened = new MessageProtector(sa.suite, sa.keys, !sa.isInitiator).open(w.data, msg.header, msg.payloads);
  if (opened.kind !== 'payloads') return undefined;
  return { header: msg.header, payloads: opened.payloads, sa };
}

/** Encrypts an inner chain (first payload type and bytes) as `sa`'s side would send it, under `header`. */
export function sealAs(sa: IkeSa, header: IkeHeader, firstType: number, bytes: Buffer): Buffer {
  const k = sa.keys;
  const suite = sa.suite;
  if (!k || !suite) throw new Error(`IKE SA ${sa.label} has no keys`);
  const cipher = createSkCipher({
    encr: suite.encr.id,
    ...(suite.encr.keyLen !== undefined ? { keyLen: suite.encr.keyLen } : {}),
    ...(suite.integ !== undefined ? { integ: suite.integ, integKey: sa.isInitiator ? k.skAi : k.skAr } : {}),
    encKey: sa.isInitiator ? k.skEi : k.skEr,
  });
  const prefix = Buffer.from(encodeSkPrefix(header, [], firstType, cipher.sealedLength(bytes.length)));
  return cipher.sealMessage ? cipher.sealMessage(prefix, bytes) : Buffer.concat([prefix, cipher.seal(prefix, bytes)]);
}

/** `w` with its inner payloads replaced by `edit`'s result, sealed again; undefined if it cannot be opened. */
export function rewriteSent(sender: Node, w: Wire, edit: (payloads: Payload[]) => Payload[]): Buffer | undefined {
  const o = openSent(sender, w);
  if (!o) return undefined;
  const { firstType, bytes } = encodePayloadChain(edit(o.payloads));
  return sealAs(o.sa, o.header, firstType, bytes);
}
