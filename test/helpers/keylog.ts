/**
 * Parser for the charon debug key logs in test/fixtures/golden/keylogs and
 * assembly of the IKEv2 SAs they describe (nonces, SPIs, DH secret, keys,
 * AUTH octets). IKEv1 parsing lives elsewhere.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GOLDEN_DIR } from './golden.js';

export interface KeylogEntry {
  /** Connection name (`v2-psk`), or '' when charon did not know it yet. */
  conn: string;
  /** IKE SA unique id from `<conn|N>`. */
  saId: number;
  label: string;
  bytes: Buffer;
  line: number;
}

const HEAD = /<(?:([^|>]+)\|)?(\d+)> (.+?) => (\d+) bytes @ /;
const DUMP = /<(?:[^>]*)>\s+(\d+): (.{0,47})/;

/** Every `label => N bytes` dump of a log, in order. */
export function parseKeylog(text: string): KeylogEntry[] {
  const lines = text.split('\n');
  const out: KeylogEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = HEAD.exec(lines[i] ?? '');
    if (!m) continue;
    const size = Number(m[4]);
    const hex: string[] = [];
    let j = i + 1;
    while (hex.length < size) {
      const d = DUMP.exec(lines[j] ?? '');
      if (!d || Number(d[1]) !== hex.length) throw new Error(`keylog line ${j + 1}: truncated dump of ${m[3]}`);
      hex.push(...((d[2] ?? '').match(/[0-9A-F]{2}/g) ?? []).slice(0, size - hex.length));
      j++;
    }
    out.push({
      conn: m[1] ?? '',
      saId: Number(m[2]),
      label: m[3] ?? '',
      bytes: Buffer.from(hex.join(''), 'hex'),
      line: i + 1,
    });
    i = j - 1;
  }
  return out;
}

export function readKeylog(name: string): KeylogEntry[] {
  return parseKeylog(readFileSync(join(GOLDEN_DIR, 'keylogs', `${name}.log`), 'utf8'));
}

export const KEYLOGS = ['netlink-left-keys', 'netlink-right-keys', 'libipsec-left-keys', 'libipsec-right-keys'];

/** Raw IKEv2 helpers (no codec yet): walk the payload chain of a message or inner chain. */
export interface RawPayload {
  type: number;
  /** Offset of the generic payload header within the walked buffer. */
  offset: number;
  /** Payload body (after the 4-byte generic header). */
  body: Buffer;
}

export function walkPayloads(buf: Buffer, first: number, start: number): RawPayload[] {
  const out: RawPayload[] = [];
  let type = first;
  let off = start;
  while (type !== 0) {
    if (off + 4 > buf.length) throw new Error(`payload header past end at ${off}`);
    const len = buf.readUInt16BE(off + 2);
    if (len < 4 || off + len > buf.length) throw new Error(`bad payload length ${len} at ${off}`);
    out.push({ type, offset: off, body: buf.subarray(off + 4, off + len) });
    // The SK payload's next-payload field names the first inner payload, not a successor.
    if (type === 46) break;
    type = buf[off] ?? 0;
    off += len;
  }
  return out;
}

export const ikeHeader = (m: Buffer) => ({
  spiI: m.subarray(0, 8),
  spiR: m.subarray(8, 16),
  nextPayload: m[16] ?? 0,
  version: m[17] ?? 0,
  exchange: m[18] ?? 0,
  flags: m[19] ?? 0,
  msgId: m.readUInt32BE(20),
  length: m.readUInt32BE(24),
  isInitiator: ((m[19] ?? 0) & 0x08) !== 0,
  isResponse: ((m[19] ?? 0) & 0x20) !== 0,
});

export interface GoldenIkev2Sa {
  log: string;
  conn: string;
  saId: number;
  spiI: Buffer;
  spiR: Buffer;
  ni: Buffer;
  nr: Buffer;
  sharedSecret: Buffer;
  skeyseed: Buffer;
  /** Logged keys by charon's label (`Sk_d`, `Sk_ai`, ... without " secret"). */
  keys: Map<string, Buffer>;
  /** IKE_SA_INIT request and response as embedded in the AUTH octets. */
  initRequest: Buffer;
  initResponse: Buffer;
  /** AUTH signed octets for the initiator's and responder's AUTH. */
  octetsI: Buffer;
  octetsR: Buffer;
  /** Logged PSK AUTH values (PSK only), keyed like octets. */
  pskAuthI?: Buffer;
  pskAuthR?: Buffer;
  psk?: Buffer;
  idI: Buffer;
  idR: Buffer;
  /** CHILD_SA key dumps (libipsec runs only). */
  child?: { seed: Buffer; encI: Buffer; encR: Buffer; integI?: Buffer; integR?: Buffer };
}

function nonceOf(msg: Buffer): Buffer {
  const h = ikeHeader(msg);
  const n = walkPayloads(msg, h.nextPayload, 28).find((p) => p.type === 40);
  if (!n) throw new Error('no Nonce payload');
  return n.body;
}

/**
 * The IKEv2 SAs of one log that got as far as AUTH. Nonces come from the
 * IKE_SA_INIT messages embedded in the logged AUTH octets.
 */
export function goldenIkev2Sas(log: string): GoldenIkev2Sa[] {
  const entries = readKeylog(log);
  const bySa = new Map<number, KeylogEntry[]>();
  for (const e of entries) {
    const list = bySa.get(e.saId) ?? [];
    list.push(e);
    bySa.set(e.saId, list);
  }
  const out: GoldenIkev2Sa[] = [];
  for (const [saId, list] of bySa) {
    const get = (label: string) => list.filter((e) => e.label === label);
    const skeyseed = get('SKEYSEED')[0];
    const shared = get('shared Diffie Hellman secret')[0];
    const octets = get("octets = message + nonce + prf(Sk_px, IDx')");
    if (!skeyseed || !shared || octets.length < 2) continue;
    const keys = new Map<string, Buffer>();
    for (const e of list)
      if (e.label.endsWith(' secret') && e.label.startsWith('Sk_')) keys.set(e.label.slice(0, -7), e.bytes);
    const prfLen = skeyseed.bytes.length;
    let octetsI: Buffer | undefined;
    let octetsR: Buffer | undefined;
    let initRequest: Buffer | undefined;
    let initResponse: Buffer | undefined;
    let idI: Buffer | undefined;
    let idR: Buffer | undefined;
    let pskAuthI: Buffer | undefined;
    let pskAuthR: Buffer | undefined;
    const ids = get("IDx'");
    const auths = get('AUTH = prf(prf(secret, keypad), octets)');
    octets.forEach((o, k) => {
      const msg = o.bytes.subarray(0, ikeHeader(o.bytes).length);
      if (ikeHeader(msg).isInitiator) {
        octetsI = o.bytes;
        initRequest = msg;
        idI = ids[k]?.bytes;
        pskAuthI = auths[k]?.bytes;
      } else {
        octetsR = o.bytes;
        initResponse = msg;
        idR = ids[k]?.bytes;
        pskAuthR = auths[k]?.bytes;
      }
    });
    if (!octetsI || !octetsR || !initRequest || !initResponse || !idI || !idR) continue;
    const ni = nonceOf(initRequest);
    const nr = nonceOf(initResponse);
    if (!octetsI.subarray(initRequest.length, initRequest.length + nr.length).equals(nr)) {
      throw new Error(`${log} <${saId}>: octets do not carry Nr after the request`);
    }
    if (octetsI.length !== initRequest.length + nr.length + prfLen) throw new Error('unexpected octets length');
    const seed = get('seed')[0];
    const encI = get('encryption initiator key')[0];
    const encR = get('encryption responder key')[0];
    const sa: GoldenIkev2Sa = {
      log,
      conn: list.find((e) => e.conn)?.conn ?? '',
      saId,
      spiI: Buffer.from(initResponse.subarray(0, 8)),
      spiR: Buffer.from(initResponse.subarray(8, 16)),
      ni,
      nr,
      sharedSecret: shared.bytes,
      skeyseed: skeyseed.bytes,
      keys,
      initRequest,
      initResponse,
      octetsI,
      octetsR,
      idI,
      idR,
      ...(pskAuthI && pskAuthR ? { pskAuthI, pskAuthR, psk: get('secret')[0]?.bytes } : {}),
      ...(seed && encI && encR
        ? {
            child: {
              seed: seed.bytes,
              encI: encI.bytes,
              encR: encR.bytes,
              integI: get('integrity initiator key')[0]?.bytes,
              integR: get('integrity responder key')[0]?.bytes,
            },
          }
        : {}),
    };
    out.push(sa);
  }
  return out;
}
