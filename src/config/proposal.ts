/**
 * strongSwan-style proposal strings ("aes256gcm16-prfsha256-x25519",
 * "aes128-sha256-modp2048") → typed transform lists with IANA IDs
 * (RFC 7296 §3.3.2, IANA "IKEv2 Transform Type N" registries).
 */

export type TransformKind = 'encr' | 'prf' | 'integ' | 'ke' | 'esn';

export interface Transform {
  kind: TransformKind;
  /** IANA transform ID. */
  id: number;
  /** Key length in bits for variable-length ciphers (Key Length attribute). */
  keyBits?: number;
  /** The token as written, for logs. */
  name: string;
  aead?: boolean;
}

export interface Proposal {
  /** The source string, for logs. */
  text: string;
  encr: Transform[];
  prf: Transform[];
  integ: Transform[];
  ke: Transform[];
  esn: Transform[];
}

export type ProposalResult = { ok: true; proposal: Proposal } | { ok: false; message: string };

type Entry = Omit<Transform, 'name'>;
const T = new Map<string, Entry>();
const add = (names: string[], e: Entry) => {
  for (const n of names) T.set(n, e);
};

for (const bits of [128, 192, 256]) {
  add([`aes${bits}`, ...(bits === 128 ? ['aes'] : [])], { kind: 'encr', id: 12, keyBits: bits });
  add([`aes${bits}ctr`], { kind: 'encr', id: 13, keyBits: bits });
  add([`aes${bits}gcm8`], { kind: 'encr', id: 18, keyBits: bits, aead: true });
  add([`aes${bits}gcm12`], { kind: 'encr', id: 19, keyBits: bits, aead: true });
  add([`aes${bits}gcm16`, `aes${bits}gcm`], { kind: 'encr', id: 20, keyBits: bits, aead: true });
}
add(['3des'], { kind: 'encr', id: 3 });
add(['chacha20poly1305'], { kind: 'encr', id: 28, keyBits: 256, aead: true });

add(['md5'], { kind: 'integ', id: 1 });
add(['sha1', 'sha'], { kind: 'integ', id: 2 });
add(['aesxcbc'], { kind: 'integ', id: 5 });
add(['sha256', 'sha2_256'], { kind: 'integ', id: 12 });
add(['sha384', 'sha2_384'], { kind: 'integ', id: 13 });
add(['sha512', 'sha2_512'], { kind: 'integ', id: 14 });

add(['prfmd5'], { kind: 'prf', id: 1 });
add(['prfsha1'], { kind: 'prf', id: 2 });
add(['prfaesxcbc'], { kind: 'prf', id: 4 });
add(['prfsha256'], { kind: 'prf', id: 5 });
add(['prfsha384'], { kind: 'prf', id: 6 });
add(['prfsha512'], { kind: 'prf', id: 7 });

const KE: [string[], number][] = [
  [['modp768'], 1],
  [['modp1024'], 2],
  [['modp1536'], 5],
  [['modp2048'], 14],
  [['modp3072'], 15],
  [['modp4096'], 16],
  [['modp6144'], 17],
  [['modp8192'], 18],
  [['ecp256'], 19],
  [['ecp384'], 20],
  [['ecp521'], 21],
  [['x25519', 'curve25519'], 31],
  [['x448', 'curve448'], 32],
];
for (const [names, id] of KE) add(names, { kind: 'ke', id });
add(['noesn'], { kind: 'esn', id: 0 });
add(['esn'], { kind: 'esn', id: 1 });

/** PRF implied by an integrity algorithm when an IKE proposal names none. */
const PRF_FOR_INTEG: Record<number, string> = {
  1: 'prfmd5',
  2: 'prfsha1',
  5: 'prfaesxcbc',
  12: 'prfsha256',
  13: 'prfsha384',
  14: 'prfsha512',
};

export function parseProposal(text: string, kind: 'ike' | 'esp'): ProposalResult {
  const p: Proposal = { text, encr: [], prf: [], integ: [], ke: [], esn: [] };
  const fail = (message: string): ProposalResult => ({ ok: false, message: `proposal "${text}": ${message}` });
  if (text.trim() === '') return fail('is empty');
  for (const raw of text.split('-')) {
    const tok = raw.trim().toLowerCase();
    const e = T.get(tok);
    if (e === undefined) {
      return fail(tok === '' ? 'has an empty token' : `unknown algorithm "${raw}"`);
    }
    if (e.kind === 'prf' && kind === 'esp') return fail(`"${raw}" is a PRF, which ESP proposals do not take`);
    if (e.kind === 'esn' && kind === 'ike') return fail(`"${raw}" applies to ESP only`);
    const list = p[e.kind];
    if (list.some((t) => t.id === e.id && t.keyBits === e.keyBits)) return fail(`"${raw}" is listed twice`);
    list.push({ ...e, name: tok });
  }
  if (p.encr.length === 0) return fail('names no encryption algorithm (e.g. aes256gcm16 or aes256)');
  const aead = p.encr.filter((t) => t.aead === true).length;
  if (aead !== 0 && aead !== p.encr.length) return fail('mixes AEAD (gcm, chacha20poly1305) and non-AEAD ciphers');
  if (aead === 0 && p.integ.length === 0) return fail('a non-AEAD cipher needs an integrity algorithm (e.g. sha256)');
  if (aead !== 0 && p.integ.length !== 0) return fail('an AEAD cipher takes no integrity algorithm');
  if (kind === 'ike') {
    if (p.ke.length === 0) return fail('names no key exchange group (e.g. x25519 or modp2048)');
    if (p.prf.length === 0) {
      if (aead !== 0) return fail('an AEAD IKE proposal needs a PRF (e.g. prfsha256)');
      for (const i of p.integ) {
        const name = PRF_FOR_INTEG[i.id];
        const e = name === undefined ? undefined : T.get(name);
        if (name !== undefined && e !== undefined && !p.prf.some((t) => t.id === e.id)) p.prf.push({ ...e, name });
      }
    }
  } else if (p.esn.length === 0) {
    p.esn.push({ kind: 'esn', id: 0, name: 'noesn' });
  }
  return { ok: true, proposal: p };
}

/** A list of proposals, comma-separated or already split. */
export function parseProposals(
  list: string[],
  kind: 'ike' | 'esp',
): { ok: true; proposals: Proposal[] } | { ok: false; message: string } {
  const out: Proposal[] = [];
  for (const item of list.flatMap((s) => s.split(','))) {
    const r = parseProposal(item.trim(), kind);
    if (!r.ok) return r;
    out.push(r.proposal);
  }
  return { ok: true, proposals: out };
}
