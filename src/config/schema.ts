/**
 * A small declarative schema over the located TOML tree: a section is a map
 * from key to field parser; reading a section reports wrong types and
 * unknown keys (with the nearest known key) at their positions.
 */
import { type ConfigError, nearestKey } from './errors.js';
import type { Identity } from './identity.js';
import { parseIdentity } from './identity.js';
import { type Proposal, parseProposals } from './proposal.js';
import type { LNode, Loc, LTable } from './toml-tree.js';
import { describeNode } from './toml-tree.js';
import { LOG_LEVELS, type LogLevel } from './types.js';
import {
  bool,
  duration,
  type Field,
  hostOrIp,
  hostPortOrOff,
  int,
  ipAddress,
  listOf,
  oneOf,
  pathOrOff,
  port,
  prefix,
  spdHash,
  str,
  yesNo,
} from './values.js';

/** Collects errors for one file. */
export class FileErrors {
  constructor(
    readonly file: string,
    readonly sink: ConfigError[],
  ) {}

  at(loc: Loc, key: string | undefined, message: string): void {
    const e: ConfigError = { file: this.file, line: loc.line, column: loc.column, message };
    if (key !== undefined) e.key = key;
    this.sink.push(e);
  }

  whole(message: string): void {
    this.sink.push({ file: this.file, line: 0, column: 0, message });
  }
}

export type SectionSpec = Record<string, Field<unknown>>;
export type SectionValues<S extends SectionSpec> = { [K in keyof S]?: S[K] extends Field<infer T> ? T : never };

export interface SectionRead<S extends SectionSpec> {
  values: SectionValues<S>;
  /** Where each key's value was written. */
  locs: Map<string, Loc>;
}

/**
 * Reads `table` against `spec`. `keyPrefix` names the section in messages
 * ("daemon." gives key "daemon.port"). Keys in `extra` are accepted but left
 * to the caller (nested tables and arrays of tables).
 */
export function readSection<S extends SectionSpec>(
  errs: FileErrors,
  table: LTable,
  spec: S,
  keyPrefix: string,
  extra: readonly string[] = [],
): SectionRead<S> {
  const values: Record<string, unknown> = {};
  const locs = new Map<string, Loc>();
  const known = [...Object.keys(spec), ...extra];
  for (const [key, entry] of table.entries) {
    const field = spec[key];
    if (field === undefined) {
      if (extra.includes(key)) continue;
      const near = nearestKey(key, known);
      const where = keyPrefix === '' ? '' : ` in [${keyPrefix.replace(/\.$/, '')}]`;
      errs.at(
        entry.keyLoc,
        keyPrefix + key,
        `unknown key${where}${near === undefined ? '' : `; did you mean ${near}?`}`,
      );
      continue;
    }
    const r = field(entry.node);
    if (r.ok) {
      values[key] = r.value;
      locs.set(key, entry.node.loc);
    } else {
      errs.at(entry.node.loc, keyPrefix + key, `expected ${r.expected}, found ${r.found ?? describeNode(entry.node)}`);
    }
  }
  return { values: values as SectionValues<S>, locs };
}

/** Reads a sub-table by name; reports a non-table value. */
export function subTable(errs: FileErrors, parent: LTable, key: string, keyPrefix = ''): LTable | undefined {
  const e = parent.entries.get(key);
  if (e === undefined) return undefined;
  if (e.node.kind !== 'table') {
    errs.at(e.node.loc, keyPrefix + key, `expected a table ([${keyPrefix + key}]), found ${describeNode(e.node)}`);
    return undefined;
  }
  return e.node;
}

export const logLevel = oneOf(...LOG_LEVELS) as Field<LogLevel>;

export const identity: Field<Identity> = (n: LNode) => {
  if (n.kind !== 'string')
    return { ok: false, expected: 'an identity like "fqdn:host.example"', found: describeNode(n) };
  const r = parseIdentity(n.value);
  return r.ok ? { ok: true, value: r.id } : { ok: false, expected: 'a valid identity', found: r.message };
};

function proposals(kind: 'ike' | 'esp'): Field<Proposal[]> {
  const strings = listOf(str, { single: true });
  return (n) => {
    const s = strings(n);
    if (!s.ok) return { ok: false, expected: 'a proposal string or an array of them', found: describeNode(n) };
    const r = parseProposals(s.value, kind);
    return r.ok
      ? { ok: true, value: r.proposals }
      : { ok: false, expected: `a valid ${kind.toUpperCase()} proposal`, found: r.message };
  };
}

const peerName: Field<string> = (n) =>
  n.kind === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(n.value)
    ? { ok: true, value: n.value }
    : { ok: false, expected: 'a name of letters, digits, "_", "." and "-" (at most 64)', found: describeNode(n) };

export const DAEMON_SPEC = {
  state_dir: str,
  socket: str,
  socket_group: str,
  listen: listOf(ipAddress, { single: true }),
  port,
  natt_port: port,
  keylog: pathOrOff,
  shutdown: oneOf('keep', 'delete'),
  allow_inline_secrets: bool,
  peers_dir: str,
} satisfies SectionSpec;

export const KERNEL_SPEC = {
  backend: oneOf('xfrm', 'memory'),
  reqid_min: int(1, 0xffff_ffff),
  reqid_max: int(1, 0xffff_ffff),
  policy_priority: int(0, 0xffff_ffff),
  spd_hash_v4: spdHash(32),
  spd_hash_v6: spdHash(128),
} satisfies SectionSpec;

export const METRICS_SPEC = {
  prometheus_listen: hostPortOrOff,
  graphite: hostPortOrOff,
  graphite_prefix: str,
  graphite_interval: duration,
} satisfies SectionSpec;

export const STARTUP_SPEC = {
  max_concurrent_initiations: int(1, 100_000),
  initiation_jitter: duration,
} satisfies SectionSpec;

export const LOG_SPEC = {
  default: logLevel,
  format: oneOf('journal', 'json'),
} satisfies SectionSpec;

/** Keys of a Child SA, in `[[children]]` tables. */
export const CHILD_SPEC = {
  name: peerName,
  mode: oneOf('tunnel', 'transport'),
  local_ts: listOf(prefix, { single: true }),
  remote_ts: listOf(prefix, { single: true }),
  esp_proposals: proposals('esp'),
  child_lifetime: duration,
} satisfies SectionSpec;

/** Keys of a peer file, also allowed in the main file's [defaults]. */
export const PEER_SPEC = {
  name: peerName,
  address: hostOrIp,
  local_address: ipAddress,
  version: int(1, 2),
  local_id: identity,
  remote_id: identity,
  auth: oneOf('psk', 'pubkey'),
  psk_file: str,
  psk: str,
  cert_file: str,
  key_file: str,
  ca_files: listOf(str, { single: true }),
  ike_proposals: proposals('ike'),
  esp_proposals: proposals('esp'),
  ike_lifetime: duration,
  child_lifetime: duration,
  rekey_margin: duration,
  rekey_jitter: duration,
  dpd_delay: duration,
  dpd_timeout: duration,
  dpd_action: oneOf('clear', 'trap', 'restart'),
  start: oneOf('none', 'now', 'trap'),
  mode: oneOf('tunnel', 'transport'),
  local_ts: listOf(prefix, { single: true }),
  remote_ts: listOf(prefix, { single: true }),
  nat_keepalive: duration,
  fragmentation: yesNo,
  fragment_size: int(576, 65535),
  aggressive: bool,
  pfs: bool,
  retransmit_base: duration,
  retransmit_tries: int(1, 30),
  retransmit_max: duration,
  restart_backoff_max: duration,
} satisfies SectionSpec;

export type PeerValues = SectionValues<typeof PEER_SPEC>;
