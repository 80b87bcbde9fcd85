/**
 * `coatictl import racoon <racoon.conf> [--setkey <setkey.conf>] [--out <dir>] [--secrets-dir <dir>]`
 *
 * Turns an ipsec-tools racoon configuration (its `remote` and `sainfo` blocks, the
 * pre-shared key file it names, and the setkey policy file) into coati peer files
 * (`version = 1`), one per `remote`. Every statement is either mapped to a coati key
 * (and named in a comment next to it, with its racoon.conf line) or reported as not
 * supported, line by line: nothing is dropped silently. Secrets never go into the peer
 * files: they get `psk_file` references, and with `--secrets-dir` the keys from racoon's
 * psk.txt are copied into those files (mode 0600).
 *
 * `convertRacoon` is pure (text in, files and messages out); `importRacoon` does the I/O.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

// ---- racoon.conf syntax ------------------------------------------------------------

/** One racoon statement: `words... ;` or `words... { children }`. */
export interface RacoonStmt {
  words: string[];
  line: number;
  children?: RacoonStmt[];
}

export class RacoonSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}

interface Token {
  text: string;
  line: number;
  /** punctuation: `{`, `}`, `;` */
  punct: boolean;
}

function tokenize(text: string, file: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === '\n') {
      line++;
      i++;
    } else if (/\s/.test(ch) || ch === ',') {
      i++;
    } else if (ch === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (ch === '{' || ch === '}' || ch === ';') {
      out.push({ text: ch, line, punct: true });
      i++;
    } else if (ch === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0 || text.slice(i, end).includes('\n')) throw new RacoonSyntaxError(file, line, 'unterminated string');
      out.push({ text: text.slice(i + 1, end), line, punct: false });
      i = end + 1;
    } else {
      let j = i;
      while (j < text.length && !/[\s,{};#"]/.test(text[j] as string)) j++;
      out.push({ text: text.slice(i, j), line, punct: false });
      i = j;
    }
  }
  return out;
}

/** Parses racoon.conf into nested statements (commas separate list items and are dropped). */
export function parseRacoonConf(text: string, file = 'racoon.conf'): RacoonStmt[] {
  const toks = tokenize(text, file);
  let pos = 0;
  const block = (depth: number): RacoonStmt[] => {
    const stmts: RacoonStmt[] = [];
    while (pos < toks.length) {
      const t = toks[pos] as Token;
      if (t.punct && t.text === '}') {
        if (depth === 0) throw new RacoonSyntaxError(file, t.line, 'unexpected "}"');
        pos++;
        return stmts;
      }
      if (t.punct && t.text === ';') {
        pos++;
        continue;
      }
      const words: string[] = [];
      const line = t.line;
      for (;;) {
        const u = toks[pos];
        if (u === undefined) throw new RacoonSyntaxError(file, line, `statement "${words.join(' ')}" has no ";"`);
        pos++;
        if (!u.punct) {
          words.push(u.text);
          continue;
        }
        if (u.text === ';') {
          stmts.push({ words, line });
          break;
        }
        if (u.text === '{') {
          stmts.push({ words, line, children: block(depth + 1) });
          break;
        }
        throw new RacoonSyntaxError(file, u.line, `unexpected "}" in statement "${words.join(' ')}"`);
      }
    }
    if (depth > 0) throw new RacoonSyntaxError(file, toks.at(-1)?.line ?? 1, 'missing "}" at end of file');
    return stmts;
  };
  return block(0);
}

// ---- setkey policies ---------------------------------------------------------------

export interface SetkeyPolicy {
  line: number;
  src: string;
  dst: string;
  dir: 'in' | 'out' | 'fwd';
  mode: 'transport' | 'tunnel';
  /** tunnel endpoints, `S-D` */
  tunnel?: { src: string; dst: string };
  level: string;
}

// ---- conversion --------------------------------------------------------------------

export interface ImportMessage {
  file: string;
  line: number;
  message: string;
}

export const formatImportMessage = (m: ImportMessage) => `${m.file}:${m.line}: ${m.message}`;

export interface GeneratedPeer {
  name: string;
  /** `<name>.toml` */
  fileName: string;
  toml: string;
  /** Where psk_file points (as written in the peer file), if auth is psk. */
  pskFile?: string;
  /** The key from psk.txt (raw bytes; `0x...` keys decoded), when found. */
  psk?: Buffer;
}

export interface ConvertInput {
  racoonConf: string;
  /** Shown in messages (racoon.conf's base name by default). */
  racoonName?: string;
  /** Directory racoon.conf is in: relative `path` statements resolve against it. */
  racoonDir?: string;
  setkey?: string;
  setkeyName?: string;
  /** psk.txt contents; by default read from racoon's `path pre_shared_key` by the caller. */
  pskText?: string;
  pskName?: string;
  /** Directory psk_file references point into (default `secrets`, relative to coati.conf). */
  secretsDir?: string;
}

export interface ConvertResult {
  peers: GeneratedPeer[];
  messages: ImportMessage[];
  /** racoon's `path pre_shared_key` (resolved), if any. */
  pskPath?: string;
}

const UNITS: Record<string, number> = {
  sec: 1,
  secs: 1,
  second: 1,
  seconds: 1,
  min: 60,
  mins: 60,
  minute: 60,
  minutes: 60,
  hour: 3600,
  hours: 3600,
};

const GROUPS: Record<string, string> = {
  '14': 'modp2048',
  modp2048: 'modp2048',
  '15': 'modp3072',
  modp3072: 'modp3072',
  '16': 'modp4096',
  modp4096: 'modp4096',
  '19': 'ecp256',
  '20': 'ecp384',
  '21': 'ecp521',
};
const WEAK_GROUPS = new Set(['1', '2', '5', 'modp768', 'modp1024', 'modp1536', '17', '18', 'modp6144', 'modp8192']);
const P1_HASH: Record<string, string> = { sha1: 'sha1', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' };
const P2_AUTH: Record<string, string> = {
  hmac_sha1: 'sha1',
  hmac_sha256: 'sha256',
  hmac_sha384: 'sha384',
  hmac_sha512: 'sha512',
};

const q = (s: string) => JSON.stringify(s);
const stmtText = (s: RacoonStmt) => s.words.join(' ');

interface Sainfo {
  stmt: RacoonStmt;
  /** null = anonymous */
  local: string | null;
  remote: string | null;
  esp: string[];
  pfsGroup?: string;
  lifetimeS?: number;
  mapped: [RacoonStmt, string][];
}

interface PeerDraft {
  stmt: RacoonStmt;
  address: string;
  keys: [string, string][];
  comments: string[];
  children: { name: string; mode: string; localTs?: string; remoteTs?: string; policyLine: number }[];
  mode?: 'transport' | 'tunnel';
  remoteIdValue?: string;
  auth: 'psk' | 'pubkey';
}

/** racoon `N unit` → seconds, or undefined. */
function seconds(n: string | undefined, unit: string | undefined): number | undefined {
  if (n === undefined || !/^\d+$/.test(n)) return undefined;
  const f = unit === undefined ? 1 : UNITS[unit];
  return f === undefined ? undefined : Number(n) * f;
}

function identity(words: string[]): { id?: string; why?: string } {
  const [type, v] = words;
  switch (type) {
    case 'address':
      return v && isIP(v)
        ? { id: `ip:${v}` }
        : { why: 'needs an explicit address here (coati has no "own address" form)' };
    case 'fqdn':
      return v ? { id: `fqdn:${v}` } : { why: 'has no value' };
    case 'user_fqdn':
      return v ? { id: `email:${v}` } : { why: 'has no value' };
    case 'asn1dn':
      return v
        ? { id: `dn:${v.replace(/\/(?=[A-Za-z]+=)/g, ',').replace(/^,/, '')}` }
        : { why: 'without a DN takes it from the certificate, which coati does not do; write the DN' };
    case 'keyid':
      return {
        why: 'keyid identifiers read from a file are not supported; write the key ID in hex as remote_id = "keyid:..."',
      };
    default:
      return { why: `identifier type "${type}" is unknown` };
  }
}

/** Splits `aes 128 aes 256 3des` style lists into [name, bits?] pairs. */
function algList(words: string[]): [string, string | undefined][] {
  const out: [string, string | undefined][] = [];
  for (const w of words) {
    if (/^\d+$/.test(w) && out.length > 0 && out[out.length - 1]?.[1] === undefined) {
      (out[out.length - 1] as [string, string | undefined])[1] = w;
    } else out.push([w, undefined]);
  }
  return out;
}

function inPrefix(addr: string, spec: string): boolean {
  const [net, len] = spec.split('/');
  if (net === addr) return true;
  if (!net || len === undefined || isIP(net) !== 4 || isIP(addr) !== 4) return false;
  const n = (a: string) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const bits = Number(len);
  const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
  return (n(addr) & mask) >>> 0 === (n(net) & mask) >>> 0;
}

function peerNameFor(address: string, remoteId: string | undefined, used: Set<string>): string {
  const fromId = remoteId?.startsWith('fqdn:') ? remoteId.slice(5).replace(/\.$/, '') : undefined;
  let base =
    (fromId ?? address)
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 60) || 'peer';
  if (used.has(base)) {
    let i = 2;
    while (used.has(`${base}-${i}`)) i++;
    base = `${base}-${i}`;
  }
  used.add(base);
  return base;
}

export function parseSetkey(text: string, msg: (line: number, m: string) => void): SetkeyPolicy[] {
  const out: SetkeyPolicy[] = [];
  // Statements end with ';' and may span lines.
  let buf = '';
  let start = 1;
  let line = 1;
  for (const raw of text.split('\n')) {
    const l = raw.replace(/#.*$/, '');
    if (buf.trim() === '') start = line;
    buf += ` ${l}`;
    line++;
    while (buf.includes(';')) {
      const idx = buf.indexOf(';');
      const stmt = buf.slice(0, idx).trim().replace(/\s+/g, ' ');
      buf = buf.slice(idx + 1);
      if (stmt !== '') handle(stmt, start);
      start = line - 1;
    }
  }
  if (buf.trim() !== '') msg(start, `\`${buf.trim()}\` has no ";" and was not read`);
  function handle(stmt: string, at: number) {
    const w = stmt.split(' ');
    const cmd = w[0];
    if (cmd === 'flush' || cmd === 'spdflush') {
      msg(at, `\`${stmt}\` is not needed: coati installs and removes only its own SAs and policies`);
      return;
    }
    if (cmd !== 'spdadd') {
      msg(
        at,
        `\`${stmt}\` is not supported: coati keys every SA through IKE; manual SAs (add/delete) and other setkey commands are not imported`,
      );
      return;
    }
    // spdadd [-46n] src[/len][[port]] dst[/len][[port]] upperspec -P dir ipsec proto/mode/S-D/level
    const args = w.slice(1).filter((x) => !/^-[46n]+$/.test(x));
    const [src, dst, upper] = args;
    const p = args.indexOf('-P');
    const dir = args[p + 1];
    const action = args[p + 2];
    const rule = args[p + 3];
    if (p < 0 || !src || !dst || !upper || !dir) {
      msg(at, `\`${stmt}\` is not a policy coati can read (expected \`spdadd SRC DST any -P DIR ipsec ...\`)`);
      return;
    }
    if (action === 'none' || action === 'discard') {
      msg(
        at,
        `\`${stmt}\` is not supported: coati manages only IPsec policies of its peers; keep bypass/discard rules in nftables`,
      );
      return;
    }
    if (src.includes('[') || dst.includes('[') || upper !== 'any') {
      msg(
        at,
        `\`${stmt}\` is not supported: coati's traffic selectors are address prefixes; ports and protocols ("${upper}") cannot be imported`,
      );
      return;
    }
    const r = /^(esp|ah|ipcomp)\/(transport|tunnel)\/([^/]*)\/(\w+)(?::\d+)?$/.exec(rule ?? '');
    if (action !== 'ipsec' || !r) {
      msg(at, `\`${stmt}\` is not a policy coati can read (expected \`ipsec esp/MODE/[S-D]/LEVEL\`)`);
      return;
    }
    if (r[1] !== 'esp') {
      msg(at, `\`${stmt}\` is not supported: only ESP is; ${r[1]?.toUpperCase()} cannot be imported`);
      return;
    }
    if (dir !== 'in' && dir !== 'out' && dir !== 'fwd') {
      msg(at, `\`${stmt}\`: unknown direction "${dir}"`);
      return;
    }
    const level = r[4] as string;
    const mode = r[2] as 'transport' | 'tunnel';
    const ends = r[3] ? /^(.+)-(.+)$/.exec(r[3]) : null;
    if (mode === 'tunnel' && !ends) {
      msg(at, `\`${stmt}\`: a tunnel policy needs its endpoints (esp/tunnel/S-D/level)`);
      return;
    }
    out.push({
      line: at,
      src,
      dst,
      dir,
      mode,
      level,
      ...(ends ? { tunnel: { src: ends[1] as string, dst: ends[2] as string } } : {}),
    });
  }
  return out;
}

/** psk.txt: `<address|identifier> <key>` per line, `#` comments; `0x...` keys are hex. */
export function parsePskFile(text: string): Map<string, { key: Buffer; line: number }> {
  const out = new Map<string, { key: Buffer; line: number }>();
  text.split('\n').forEach((raw, i) => {
    const l = raw.replace(/^\s+/, '');
    if (l === '' || l.startsWith('#')) return;
    const m = /^(\S+)\s+(.*?)\s*$/.exec(l);
    if (!m) return;
    const v = m[2] as string;
    const key =
      /^0x[0-9a-fA-F]+$/.test(v) && v.length % 2 === 0 ? Buffer.from(v.slice(2), 'hex') : Buffer.from(v, 'utf8');
    out.set(m[1] as string, { key, line: i + 1 });
  });
  return out;
}

export function convertRacoon(input: ConvertInput): ConvertResult {
  const file = input.racoonName ?? 'racoon.conf';
  const setkeyName = input.setkeyName ?? 'setkey.conf';
  const messages: ImportMessage[] = [];
  const unsupported = (s: RacoonStmt, why: string) =>
    messages.push({ file, line: s.line, message: `\`${stmtText(s)}\` is not supported: ${why}` });
  const note = (line: number, message: string, f = file) => messages.push({ file: f, line, message });
  const stmts = parseRacoonConf(input.racoonConf, file);

  let pskPath: string | undefined;
  let certDir: string | undefined;
  const global: [string, string, RacoonStmt][] = [];
  const remotes: RacoonStmt[] = [];
  const sainfos: Sainfo[] = [];

  for (const s of stmts) {
    const [kw, a1, a2] = s.words;
    if (kw === 'path' && a1 === 'pre_shared_key' && a2 !== undefined && !s.children) {
      pskPath = isAbsolute(a2) ? a2 : resolve(input.racoonDir ?? '.', a2);
    } else if (kw === 'path' && a1 === 'certificate' && a2 !== undefined && !s.children) {
      certDir = a2;
    } else if (kw === 'path') {
      unsupported(s, 'only `path pre_shared_key` and `path certificate` are read');
    } else if (kw === 'remote' && s.children) {
      remotes.push(s);
    } else if (kw === 'sainfo' && s.children) {
      sainfos.push(readSainfo(s));
    } else if (kw === 'timer' && s.children) {
      for (const t of s.children) {
        const [k, v, u] = t.words;
        const sec = seconds(v, u);
        if (k === 'counter' && v && /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 30)
          global.push(['retransmit_tries', v, t]);
        else if (k === 'interval' && sec !== undefined && sec > 0) global.push(['retransmit_base', q(`${sec}s`), t]);
        else if (k === 'natt_keepalive' && sec !== undefined) global.push(['nat_keepalive', q(`${sec}s`), t]);
        else if (k === 'phase1' || k === 'phase2')
          unsupported(t, 'coati gives up after retransmit_tries with its backoff; there is no separate phase timeout');
        else if (k === 'persend') unsupported(t, 'coati sends each message once per retransmission');
        else unsupported(t, 'unknown timer setting');
      }
    } else if (kw === 'listen' && s.children) {
      for (const t of s.children)
        unsupported(
          t,
          t.words[0] === 'adminsock'
            ? "coatictl talks to coatid's own admin socket: set `socket` (and `socket_group`) in [daemon] of coati.conf"
            : 'listen addresses are daemon-wide in coati: set `listen` in [daemon] of coati.conf',
        );
    } else if (kw === 'padding' && s.children) {
      for (const t of s.children) unsupported(t, 'coati pads per RFC 2409 and always checks padding');
    } else if (kw === 'log') {
      unsupported(s, 'set log levels in [log] of coati.conf');
    } else if (kw === 'include') {
      unsupported(s, 'included files are not followed; import them separately');
    } else {
      unsupported(s, s.children ? `\`${kw}\` blocks have no coati equivalent` : 'no coati equivalent');
    }
  }

  function readSainfo(s: RacoonStmt): Sainfo {
    const w = s.words.slice(1);
    const sa: Sainfo = { stmt: s, local: null, remote: null, esp: [], mapped: [] };
    const selectorOk = (i: number): string | null | undefined => {
      // `address A any` | `subnet A any` | `anonymous`
      if (w[i] === 'anonymous') return null;
      if ((w[i] === 'address' || w[i] === 'subnet') && w[i + 1] && w[i + 2] === 'any') return w[i + 1] as string;
      return undefined;
    };
    let rest: string[] = [];
    if (w[0] === 'anonymous' && (w.length === 1 || w[1] === 'from' || w[1] === 'group')) rest = w.slice(1);
    else {
      const l = selectorOk(0);
      const li = l === null ? 1 : 3;
      const r = selectorOk(li);
      if (l === undefined || r === undefined) {
        unsupported(
          s,
          'coati reads `sainfo anonymous` and `sainfo address A any address B any` (selectors with ports or protocols cannot be imported)',
        );
        sa.local = '!';
        return sa;
      }
      sa.local = l;
      sa.remote = r;
      rest = w.slice(li + (r === null ? 1 : 3));
    }
    if (rest.length > 0) {
      unsupported(
        { ...s, words: ['sainfo', '...', ...rest] },
        'coati matches phase 2 by peer, not by phase 1 identity or group',
      );
      sa.local = '!';
      return sa;
    }
    let encr: [string, string | undefined][] = [];
    let auth: string[] = [];
    let encrStmt: RacoonStmt | undefined;
    for (const t of s.children ?? []) {
      const [k, ...args] = t.words;
      if (k === 'encryption_algorithm') {
        encrStmt = t;
        for (const [name, bits] of algList(args)) {
          if (name === 'aes' && (bits === undefined || ['128', '192', '256'].includes(bits))) encr.push([name, bits]);
          else unsupported({ ...t, words: [k, name, ...(bits ? [bits] : [])] }, 'coati does IKEv1 ESP with AES only');
        }
      } else if (k === 'authentication_algorithm') {
        for (const a of args) {
          if (P2_AUTH[a]) auth.push(P2_AUTH[a] as string);
          else unsupported({ ...t, words: [k, a] }, 'coati does ESP integrity with HMAC-SHA1/SHA2 only');
        }
        sa.mapped.push([t, 'esp_proposals']);
      } else if (k === 'pfs_group') {
        const g = args[0] ?? '';
        if (GROUPS[g]) {
          sa.pfsGroup = GROUPS[g];
          sa.mapped.push([t, 'pfs = true']);
        } else
          unsupported(
            t,
            WEAK_GROUPS.has(g)
              ? `coati does not implement DH group ${g}; use 14 (modp2048) or stronger`
              : 'unknown group',
          );
      } else if (k === 'lifetime' && args[0] === 'time') {
        const sec = seconds(args[1], args[2]);
        if (sec === undefined) unsupported(t, 'unreadable duration');
        else {
          sa.lifetimeS = sec;
          sa.mapped.push([t, 'child_lifetime']);
        }
      } else if (k === 'lifetime') {
        unsupported(t, 'coati has no byte lifetimes');
      } else if (k === 'compression_algorithm') {
        unsupported(t, 'IPComp is not implemented; coati negotiates ESP without compression');
      } else unsupported(t, 'no coati equivalent in a Child SA');
    }
    if (encrStmt) sa.mapped.push([encrStmt, 'esp_proposals']);
    if (encr.length === 0) encr = [['aes', '128']];
    if (auth.length === 0) auth = ['sha1'];
    for (const [, bits] of encr)
      for (const a of auth) sa.esp.push(`aes${bits ?? '128'}-${a}${sa.pfsGroup ? `-${sa.pfsGroup}` : ''}`);
    return sa;
  }

  // psk.txt
  const psks = input.pskText === undefined ? new Map() : parsePskFile(input.pskText);
  const pskName = input.pskName ?? 'psk.txt';

  // setkey policies (outbound ones decide mode and selectors)
  const policies = input.setkey === undefined ? [] : parseSetkey(input.setkey, (l, m) => note(l, m, setkeyName));
  const usedPolicies = new Set<SetkeyPolicy>();
  const usedSainfos = new Set<Sainfo>();

  const used = new Set<string>();
  const peers: GeneratedPeer[] = [];
  const byName = new Map<string, RacoonStmt>();
  for (const r of remotes) {
    const [, addr, inh, parent] = r.words;
    if (addr && r.words.length === 2) byName.set(addr, r);
    if (inh === 'inherit' && parent) byName.set(addr ?? '', r);
  }

  for (const r of remotes) {
    const addr = r.words[1] ?? '';
    let body = r.children ?? [];
    if (r.words[2] === 'inherit') {
      const parent = byName.get(r.words[3] ?? '');
      if (!parent || parent === r) {
        unsupported(r, `it inherits from "${r.words[3]}", which is not a remote in this file`);
        continue;
      }
      const own = new Set(body.map((s) => s.words[0]));
      body = [...(parent.children ?? []).filter((s) => !own.has(s.words[0]) || s.words[0] === 'proposal'), ...body];
      if (body.some((s) => s.words[0] === 'proposal') && (r.children ?? []).some((s) => s.words[0] === 'proposal'))
        body = body.filter((s) => s.words[0] !== 'proposal' || (r.children ?? []).includes(s));
    } else if (r.words.length !== 2) {
      unsupported(r, 'expected `remote ADDRESS { ... }` or `remote ADDRESS inherit PARENT { ... }`');
      continue;
    }
    if (addr === 'anonymous') {
      unsupported(r, 'coati needs one peer file per remote address; write a peer for each host this block served');
      continue;
    }
    const address = addr.replace(/\[\d+\]$/, '');
    if (addr !== address)
      note(r.line, `remote port ${addr.slice(address.length)} is dropped: coati uses port 500 (and 4500 with NAT-T)`);
    if (isIP(address) === 0) {
      unsupported(r, `"${addr}" is not an IP address`);
      continue;
    }
    const d: PeerDraft = { stmt: r, address, keys: [], comments: [], children: [], auth: 'psk' };
    const map = (s: RacoonStmt, key: string, value?: string) => {
      if (value !== undefined) d.keys.push([key, value]);
      d.comments.push(`${file}:${s.line}: ${stmtText(s)}  ->  ${key}`);
    };
    for (const [k, v, s] of global) map(s, k, v);
    const ikeProposals: string[] = [];
    let ikeLifetime: number | undefined;
    let dpdDelay: number | undefined;
    let dpdRetry = 5;
    let dpdMaxfail = 5;
    let certFile: string | undefined;
    let keyFile: string | undefined;
    const cas: string[] = [];
    const authMethods = new Set<string>();
    const certPath = (p: string) => (isAbsolute(p) || certDir === undefined ? p : join(certDir, p));

    for (const s of body) {
      const [k, ...a] = s.words;
      switch (k) {
        case 'exchange_mode': {
          const first = a[0];
          if (first === 'main' || first === 'aggressive') {
            map(s, 'aggressive', String(first === 'aggressive'));
            if (a.length > 1)
              note(
                s.line,
                `\`${stmtText(s)}\`: only "${first}" is imported; coati does not fall back to ${a.slice(1).join(', ')}`,
              );
          } else unsupported(s, 'coati does Main and Aggressive Mode only');
          break;
        }
        case 'proposal': {
          let encr: string | undefined;
          let hash: string | undefined;
          let group: string | undefined;
          let bad = false;
          for (const p of s.children ?? []) {
            const [pk, pv, pu] = p.words;
            if (pk === 'encryption_algorithm') {
              if (pv === 'aes' && (pu === undefined || ['128', '192', '256'].includes(pu))) encr = `aes${pu ?? '128'}`;
              else {
                unsupported(p, 'coati does IKEv1 phase 1 with AES-CBC only');
                bad = true;
              }
            } else if (pk === 'hash_algorithm') {
              if (pv && P1_HASH[pv]) hash = P1_HASH[pv];
              else {
                unsupported(p, 'coati does IKEv1 phase 1 with SHA-1 and SHA-2 only');
                bad = true;
              }
            } else if (pk === 'dh_group') {
              if (pv && GROUPS[pv]) group = GROUPS[pv];
              else {
                unsupported(
                  p,
                  WEAK_GROUPS.has(pv ?? '')
                    ? `coati does not implement DH group ${pv}; use 14 (modp2048) or stronger`
                    : 'unknown group',
                );
                bad = true;
              }
            } else if (pk === 'authentication_method') {
              if (pv === 'pre_shared_key') authMethods.add('psk');
              else if (pv === 'rsasig') authMethods.add('pubkey');
              else {
                unsupported(p, 'coati authenticates with pre-shared keys or RSA/ECDSA signatures only');
                bad = true;
              }
            } else if (pk === 'lifetime' && pv === 'time') {
              const sec = seconds(pu, p.words[3]);
              if (sec === undefined) unsupported(p, 'unreadable duration');
              else {
                ikeLifetime = Math.min(ikeLifetime ?? sec, sec);
                map(p, 'ike_lifetime');
              }
            } else unsupported(p, 'no coati equivalent in a phase 1 proposal');
          }
          if (!bad && encr && hash && group) {
            ikeProposals.push(`${encr}-${hash}-${group}`);
            map(s, 'ike_proposals');
          } else if (!bad)
            note(
              s.line,
              `\`proposal\` is incomplete (needs encryption_algorithm, hash_algorithm, dh_group) and was skipped`,
            );
          break;
        }
        case 'lifetime': {
          const sec = a[0] === 'time' ? seconds(a[1], a[2]) : undefined;
          if (sec === undefined)
            unsupported(s, a[0] === 'time' ? 'unreadable duration' : 'coati has no byte lifetimes');
          else {
            ikeLifetime = Math.min(ikeLifetime ?? sec, sec);
            map(s, 'ike_lifetime');
          }
          break;
        }
        case 'my_identifier':
        case 'peers_identifier': {
          const r2 = identity(a);
          const key = k === 'my_identifier' ? 'local_id' : 'remote_id';
          if (r2.id) {
            map(s, key, q(r2.id));
            if (key === 'remote_id') d.remoteIdValue = r2.id;
          } else unsupported(s, `this identifier ${r2.why}`);
          break;
        }
        case 'verify_identifier':
          if (a[0] === 'on') map(s, 'remote_id (always verified)');
          else unsupported(s, 'coati always verifies the peer identity against remote_id');
          break;
        case 'dpd_delay': {
          const sec = seconds(a[0], a[1]);
          if (sec === undefined) unsupported(s, 'unreadable duration');
          else {
            dpdDelay = sec;
            map(s, 'dpd_delay', q(`${sec}s`));
          }
          break;
        }
        case 'dpd_retry':
        case 'dpd_maxfail': {
          const n = seconds(a[0], a[1]);
          if (n === undefined) unsupported(s, 'unreadable value');
          else {
            if (k === 'dpd_retry') dpdRetry = n;
            else dpdMaxfail = n;
            map(s, 'dpd_timeout');
          }
          break;
        }
        case 'nat_traversal':
          if (a[0] === 'on') map(s, 'NAT-T (RFC 3947, always on)');
          else if (a[0] === 'force')
            unsupported(s, 'coati encapsulates ESP in UDP only when NAT-D shows a NAT; it cannot force it');
          else unsupported(s, 'coati always offers NAT-T (RFC 3947); it cannot be switched off');
          break;
        case 'passive':
          if (a[0] === 'on') map(s, 'start', q('none'));
          else map(s, 'start', q('trap'));
          break;
        case 'ike_frag':
          if (a[0] === 'on' || a[0] === 'off') map(s, 'fragmentation', String(a[0] === 'on'));
          else unsupported(s, 'coati offers fragmentation or not; it cannot force it');
          break;
        case 'initial_contact':
          if (a[0] === 'on') map(s, 'INITIAL-CONTACT (always sent)');
          else unsupported(s, 'coati always sends INITIAL-CONTACT with a first ISAKMP SA');
          break;
        case 'send_cert':
        case 'send_cr':
          if (a[0] === 'on') map(s, `${k} (always with auth = "pubkey")`);
          else unsupported(s, 'coati always sends its certificate and certificate requests with auth = "pubkey"');
          break;
        case 'proposal_check':
          if (a[0] === 'obey') map(s, "proposal_check obey (coati accepts the initiator's lifetimes)");
          else unsupported(s, 'coati accepts what matches its proposals and takes the shorter lifetime (like "obey")');
          break;
        case 'certificate_type':
          if (a[0] === 'x509' && a[1] && a[2]) {
            certFile = certPath(a[1]);
            keyFile = certPath(a[2]);
            map(s, 'cert_file, key_file');
          } else unsupported(s, 'coati reads X.509 certificates (`certificate_type x509 "cert" "key"`) only');
          break;
        case 'ca_type':
          if (a[0] === 'x509' && a[1]) {
            cas.push(certPath(a[1]));
            map(s, 'ca_files');
          } else unsupported(s, 'coati reads X.509 CA certificates only');
          break;
        case 'generate_policy':
          if (a[0] === 'off') map(s, 'policies come from setkey.conf (coati installs them itself)');
          else
            unsupported(
              s,
              "coati installs policies from each peer's traffic selectors and never takes them from the initiator's proposal; write local_ts/remote_ts",
            );
          break;
        case 'support_proxy':
          unsupported(s, 'coati uses the traffic selectors of its own config only');
          break;
        case 'rekey':
          if (a[0] === 'on') map(s, 'rekey (always)');
          else unsupported(s, 'coati always re-keys before expiry');
          break;
        default:
          unsupported(s, 'no coati equivalent');
      }
    }

    // authentication
    if (authMethods.size > 1) {
      note(r.line, 'proposals mix pre_shared_key and rsasig; coati uses one method per peer: using pre_shared_key');
    }
    d.auth = authMethods.size === 1 && authMethods.has('pubkey') ? 'pubkey' : 'psk';
    if (ikeProposals.length) d.keys.push(['ike_proposals', `[${ikeProposals.map(q).join(', ')}]`]);
    else
      note(
        r.line,
        `remote ${addr} has no usable proposal; coati's default IKE proposal would apply, and that is IKEv2-only. Add ike_proposals`,
      );
    if (ikeLifetime !== undefined) d.keys.push(['ike_lifetime', q(`${ikeLifetime}s`)]);
    if (dpdDelay !== undefined && dpdDelay > 0)
      d.keys.push(['dpd_timeout', q(`${Math.max(dpdDelay, dpdRetry * dpdMaxfail)}s`)]);
    else if (dpdDelay === undefined) {
      d.keys.push(['dpd_delay', q('0s')]);
      d.comments.push(`(no dpd_delay in ${file}: racoon does no DPD then)  ->  dpd_delay = "0s"`);
    }

    // phase 2: the most specific sainfo for this peer, else the anonymous one
    const pols = policies.filter(
      (p) => p.dir === 'out' && (p.mode === 'transport' ? p.dst.split('/')[0] === address : p.tunnel?.dst === address),
    );
    for (const p of policies)
      if (p.dir !== 'out' && (p.mode === 'transport' ? p.src.split('/')[0] === address : p.tunnel?.src === address))
        usedPolicies.add(p);
    const sai =
      sainfos.find(
        (s) =>
          s.local !== '!' && s.remote !== null && (inPrefix(address, s.remote) || pols.some((p) => p.dst === s.remote)),
      ) ?? sainfos.find((s) => s.local === null && s.remote === null);
    const esp = sai?.esp ?? [];
    if (sai) usedSainfos.add(sai);
    if (sai) {
      for (const [s, key] of sai.mapped) d.comments.push(`${file}:${s.line}: ${stmtText(s)}  ->  ${key}`);
      d.keys.push(['esp_proposals', `[${esp.map(q).join(', ')}]`]);
      d.keys.push(['pfs', String(sai.pfsGroup !== undefined)]);
      if (sai.lifetimeS !== undefined) d.keys.push(['child_lifetime', q(`${sai.lifetimeS}s`)]);
    } else note(r.line, `no sainfo applies to remote ${addr}; coati's default ESP proposal and pfs apply`);

    if (input.setkey !== undefined && pols.length === 0)
      note(r.line, `no outbound policy for ${address} in ${setkeyName}; host-to-host transport mode assumed`);
    const transport = pols.filter((p) => p.mode === 'transport');
    const tunnels = pols.filter((p) => p.mode === 'tunnel');
    for (const p of pols) {
      usedPolicies.add(p);
      if (p.level !== 'require' && p.level !== 'unique')
        note(
          p.line,
          `level "${p.level}" becomes "require": coati never sends the traffic of its policies in the clear`,
          setkeyName,
        );
    }
    if (tunnels.length > 0 && transport.length > 0)
      note(r.line, `${address} has transport and tunnel policies; only the tunnel ones are imported`);
    if (tunnels.length === 0) {
      d.keys.push(['mode', q('transport')]);
      for (const p of transport)
        if (p.src.includes('/') || p.dst.includes('/'))
          note(
            p.line,
            `transport policy ${p.src} -> ${p.dst} is imported as host-to-host (the outer addresses)`,
            setkeyName,
          );
    } else {
      d.keys.push(['mode', q('tunnel')]);
      tunnels.forEach((p, i) => {
        d.children.push({ name: '', mode: 'tunnel', localTs: p.src, remoteTs: p.dst, policyLine: p.line });
        if (i === 0 && p.tunnel?.src && isIP(p.tunnel.src)) d.keys.push(['local_address', q(p.tunnel.src)]);
      });
    }
    if (d.auth === 'pubkey') {
      d.keys.push(['auth', q('pubkey')]);
      if (certFile) d.keys.push(['cert_file', q(certFile)], ['key_file', q(keyFile as string)]);
      else note(r.line, 'auth = "pubkey" but no `certificate_type x509` in this remote; add cert_file and key_file');
      if (cas.length) d.keys.push(['ca_files', `[${cas.map(q).join(', ')}]`]);
    }

    const name = peerNameFor(address, d.remoteIdValue, used);
    const gen: GeneratedPeer = { name, fileName: `${name}.toml`, toml: '' };
    if (d.auth === 'psk') {
      const pskFile = join(input.secretsDir ?? 'secrets', `${name}.psk`);
      d.keys.push(['auth', q('psk')], ['psk_file', q(pskFile)]);
      gen.pskFile = pskFile;
      const idVal = d.remoteIdValue?.replace(/^[a-z]+:/, '');
      const hit = (idVal ? psks.get(idVal) : undefined) ?? psks.get(address);
      if (hit) {
        gen.psk = hit.key;
        d.comments.push(
          `${pskName}:${hit.line}: key for ${idVal && psks.has(idVal) ? idVal : address}  ->  ${pskFile}`,
        );
        if (hit.key.length < 16)
          note(
            hit.line,
            `the key for ${address} is ${hit.key.length} bytes; coati refuses pre-shared keys shorter than 16 bytes`,
            pskName,
          );
      } else if (input.pskText !== undefined)
        note(r.line, `no key for ${idVal ?? address} in ${pskName}; write it into ${pskFile}`);
    }
    gen.toml = renderPeer(name, d, file);
    peers.push(gen);
  }
  for (const p of policies)
    if (!usedPolicies.has(p))
      note(
        p.line,
        `policy ${p.src} -> ${p.dst} (${p.dir}) belongs to no remote in ${file} and was not imported`,
        setkeyName,
      );
  for (const s of sainfos)
    if (s.local !== '!' && !usedSainfos.has(s))
      note(s.stmt.line, `\`${stmtText(s.stmt)}\` applies to no imported remote and was not imported`);
  messages.sort((x, y) => (x.file === y.file ? x.line - y.line : x.file.localeCompare(y.file)));
  return { peers, messages, ...(pskPath !== undefined ? { pskPath } : {}) };
}

function renderPeer(name: string, d: PeerDraft, file: string): string {
  const out = [
    `# Imported from ${file}:${d.stmt.line} (remote ${d.stmt.words.slice(1).join(' ')}) by coatictl import racoon.`,
    '# Where each key came from:',
    ...d.comments.map((c) => `#   ${c}`),
    `name = ${q(name)}`,
    'version = 1',
    `address = ${q(d.address)}`,
  ];
  const seen = new Set<string>();
  for (const [k, v] of d.keys) {
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(`${k} = ${v}`);
  }
  d.children.forEach((c, i) => {
    out.push('', `# policy at line ${c.policyLine} of the setkey file`, '[[children]]');
    out.push(`name = ${q(`${name}-${i + 1}`)}`, `mode = ${q(c.mode)}`);
    if (c.localTs) out.push(`local_ts = [${q(c.localTs)}]`);
    if (c.remoteTs) out.push(`remote_ts = [${q(c.remoteTs)}]`);
  });
  return `${out.join('\n')}\n`;
}

// ---- the command -------------------------------------------------------------------

export interface ImportIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

export const IMPORT_USAGE = `Usage: coatictl import racoon <racoon.conf> [--setkey <setkey.conf>] [--out <dir>] [--secrets-dir <dir>] [--psk <psk.txt>]

Converts racoon's remote/sainfo blocks (and the setkey policies) into coati IKEv1 peer
files, one per remote. Without --out the files are printed. Statements coati does not
support are listed on stderr as file:line messages.
  --setkey FILE       setkey policy file (spdadd ...) for modes and traffic selectors
  --out DIR           write <peer>.toml files into DIR (created if needed)
  --secrets-dir DIR   psk_file references point into DIR, and the keys from racoon's
                      psk.txt are copied there (mode 0600)
  --psk FILE          racoon's pre-shared key file (default: its \`path pre_shared_key\`)

Exit codes: 0 converted, 1 a file could not be read or written, 2 usage error.
`;

/** Runs `import racoon ...`; returns the exit code (0 ok, 1 failed, 2 usage). */
export async function importCommand(argv: string[], io: ImportIO): Promise<number> {
  const err = (s: string) => io.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        setkey: { type: 'string' },
        out: { type: 'string' },
        'secrets-dir': { type: 'string' },
        psk: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    err(`coatictl import: ${(e as Error).message}`);
    io.stderr.write(IMPORT_USAGE);
    return 2;
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) {
    io.stdout.write(IMPORT_USAGE);
    return 0;
  }
  const [kind, conf, ...extra] = parsed.positionals;
  if (kind !== 'racoon' || conf === undefined || extra.length > 0) {
    err(
      kind !== 'racoon'
        ? `coatictl import: expected "racoon", got ${kind === undefined ? 'nothing' : JSON.stringify(kind)}`
        : conf === undefined
          ? 'coatictl import racoon: missing <racoon.conf>'
          : `coatictl import racoon: unexpected argument ${JSON.stringify(extra[0])}`,
    );
    io.stderr.write(IMPORT_USAGE);
    return 2;
  }
  const read = (p: string) => readFileSync(p, 'utf8');
  let result: ConvertResult;
  let pskText: string | undefined;
  let pskName: string | undefined;
  try {
    const racoonConf = read(conf);
    const setkey = typeof v.setkey === 'string' ? read(v.setkey) : undefined;
    const secretsDir = typeof v['secrets-dir'] === 'string' ? resolve(v['secrets-dir']) : undefined;
    const base: ConvertInput = {
      racoonConf,
      racoonName: basename(conf),
      racoonDir: dirname(resolve(conf)),
      ...(setkey !== undefined && typeof v.setkey === 'string' ? { setkey, setkeyName: basename(v.setkey) } : {}),
      ...(secretsDir ? { secretsDir } : {}),
    };
    // First pass finds racoon's `path pre_shared_key`; read it (or --psk) and convert again.
    const pskPath = typeof v.psk === 'string' ? v.psk : convertRacoon(base).pskPath;
    if (pskPath !== undefined) {
      try {
        pskText = read(pskPath);
        pskName = basename(pskPath);
      } catch (e) {
        if (typeof v.psk === 'string' || secretsDir) throw e;
        err(`coatictl import: cannot read ${pskPath} (${(e as Error).message}); keys are not checked`);
      }
    }
    result = convertRacoon({
      ...base,
      ...(pskText !== undefined ? { pskText } : {}),
      ...(pskName !== undefined ? { pskName } : {}),
    });
  } catch (e) {
    err(`coatictl import: ${(e as Error).message}`);
    return 1;
  }
  for (const m of result.messages) err(formatImportMessage(m));
  try {
    const out = typeof v.out === 'string' ? v.out : undefined;
    if (out) mkdirSync(out, { recursive: true });
    for (const p of result.peers) {
      if (out) writeFileSync(join(out, p.fileName), p.toml);
      else io.stdout.write(`# ---- ${p.fileName}\n${p.toml}\n`);
    }
    const secretsDir = v['secrets-dir'];
    let copied = 0;
    if (typeof secretsDir === 'string') {
      mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
      for (const p of result.peers) {
        if (!p.pskFile || !p.psk) continue;
        writeFileSync(p.pskFile, p.psk, { mode: 0o600 });
        chmodSync(p.pskFile, 0o600);
        copied++;
      }
    }
    err(
      `coatictl import: ${result.peers.length} peer file(s)${out ? ` written to ${out}` : ''}, ${result.messages.length} message(s)${typeof secretsDir === 'string' ? `, ${copied} key(s) copied to ${secretsDir}` : ''}`,
    );
  } catch (e) {
    err(`coatictl import: ${(e as Error).message}`);
    return 1;
  }
  return 0;
}
