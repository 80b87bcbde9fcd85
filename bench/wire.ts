/**
 * Wire bench: decode and encode of a typical IKE_AUTH (IDi, N(INITIAL_CONTACT),
 * IDr, AUTH, SA with two ESP proposals, TSi, TSr: the request of every mesh
 * handshake), next to floors measured in the same run: a copy of the same
 * bytes (memory floor) and the AES-256-GCM open of an SK body of that size
 * (the crypto an inbound IKE_AUTH costs anyway). Ratios are coati ÷ floor.
 * Build with `npm run build`, run `node dist/bench/wire.js [seconds per case]`.
 */
import { createDecipheriv, randomBytes } from 'node:crypto';
import { P, spiBytes } from '../src/ikev2/payloads.js';
import { espSpecToWire } from '../src/sa/proposal.js';
import {
  decodeMessage,
  decodePayloadChain,
  encodeMessage,
  encodePayloadChain,
  type IkeHeader,
  NOTIFY,
} from '../src/wire/ikev2/index.js';
import { ESP_CBC, ESP_GCM, peerPolicy } from '../test/helpers/ike-pair.js';

const seconds = Number(process.argv[2] ?? '0.5');

function measure(fn: () => void): number {
  for (let i = 0; i < 200; i++) fn();
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  while (elapsed < budget) {
    for (let i = 0; i < 50; i++) fn();
    n += 50;
    elapsed = process.hrtime.bigint() - start;
  }
  return n / (Number(elapsed) / 1e9);
}

const a = { name: 'web1', addr: '10.0.0.1' };
const b = { name: 'web2', addr: '10.0.0.2' };
const policy = peerPolicy(a, b);
const child = policy.children[0]!;
const payloads = [
  P.idi(policy.localId),
  P.notify(NOTIFY.INITIAL_CONTACT),
  P.idr(policy.remoteId),
  P.auth(2, randomBytes(32)),
  P.sa(espSpecToWire([ESP_GCM, ESP_CBC], spiBytes(0xc0a81234))),
  P.tsi(child.localTs),
  P.tsr(child.remoteTs),
];
const header: IkeHeader = {
  spiI: randomBytes(8),
  spiR: randomBytes(8),
  nextPayload: 0,
  majorVersion: 2,
  minorVersion: 0,
  exchangeType: 35,
  flags: { initiator: true, response: false, higherVersion: false },
  messageId: 1,
  length: 0,
};
const inner = encodePayloadChain(payloads);
const whole = encodeMessage(header, payloads);

// Floors: a copy, and the AES-256-GCM open of an SK body of the same size.
const key = randomBytes(32);
const iv = randomBytes(12);
const aad = whole.subarray(0, 32);
const { createCipheriv } = await import('node:crypto');
const enc = createCipheriv('aes-256-gcm', key, iv);
enc.setAAD(aad);
const ct = Buffer.concat([enc.update(inner.bytes), enc.final()]);
const tag = enc.getAuthTag();

const copy = measure(() => Buffer.from(inner.bytes));
const gcm = measure(() => {
  const d = createDecipheriv('aes-256-gcm', key, iv);
  d.setAAD(aad);
  d.setAuthTag(tag);
  d.update(ct);
  d.final();
});
const decodeInner = measure(() => decodePayloadChain(inner.bytes, inner.firstType));
const encodeInner = measure(() => encodePayloadChain(payloads));
const roundTrip = measure(() => encodeMessage(header, decodeMessage(whole).payloads));

const rows = [
  ['decode IKE_AUTH payload chain', decodeInner],
  ['encode IKE_AUTH payload chain', encodeInner],
  ['decode + re-encode whole message', roundTrip],
] as const;
console.log(
  `IKE_AUTH request: ${inner.bytes.length} B of payloads (${payloads.length} payloads), ${whole.length} B message`,
);
console.log(`floors: Buffer copy ${copy.toFixed(0)} ops/s, AES-256-GCM open ${gcm.toFixed(0)} ops/s`);
console.log(`${'case'.padEnd(36)} ${'ops/s'.padStart(10)}  ÷copy   ÷gcm-open`);
for (const [name, ops] of rows) {
  console.log(
    `${name.padEnd(36)} ${ops.toFixed(0).padStart(10)}  ${(ops / copy).toFixed(3).padStart(6)}  ${(ops / gcm).toFixed(2).padStart(6)}`,
  );
}
