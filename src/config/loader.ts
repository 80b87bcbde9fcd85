/**
 * loadConfig(mainPath): the main file, then every peers.d/*.toml, with all
 * errors from all files collected (never just the first).
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { DEFAULT_OWNERSHIP } from '../kernel/xfrm/ownership.js';
import { type ConfigError, formatConfigError, nearestKey } from './errors.js';
import { PEER_EXTRA_KEYS, type PeerLayer, resolvePeer } from './peer.js';
import {
  DAEMON_SPEC,
  FileErrors,
  KERNEL_SPEC,
  LOG_SPEC,
  logLevel,
  METRICS_SPEC,
  PEER_SPEC,
  readSection,
  STARTUP_SPEC,
  subTable,
} from './schema.js';
import { type LTable, parseTomlTree } from './toml-tree.js';
import type { Config, LoadResult, LogLevel, PeerConfig } from './types.js';

export interface LoadOptions {
  /** uid that secret files must be owned by (besides root). Default: process.getuid(). */
  uid?: number;
}

const MAIN_SECTIONS = ['daemon', 'kernel', 'metrics', 'startup', 'log', 'defaults'];

async function readTree(file: string, errs: FileErrors): Promise<LTable | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    errs.whole(`cannot read: ${code === 'ENOENT' ? 'file not found' : (e as Error).message}`);
    return undefined;
  }
  const r = parseTomlTree(text);
  if (!r.ok) {
    errs.at(r.loc, undefined, `TOML syntax error: ${r.message}`);
    return undefined;
  }
  return r.root;
}

function peerLayer(errs: FileErrors, table: LTable, keyPrefix: string): PeerLayer {
  const read = readSection(errs, table, PEER_SPEC, keyPrefix, PEER_EXTRA_KEYS);
  const children = table.entries.get('children');
  return children === undefined ? { errs, read } : { errs, read, children };
}

export async function loadConfig(mainPath: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const errors: ConfigError[] = [];
  const mainErrs = new FileErrors(mainPath, errors);
  const root = await readTree(mainPath, mainErrs);
  if (root === undefined) return { ok: false, errors };

  for (const [key, e] of root.entries) {
    if (MAIN_SECTIONS.includes(key)) continue;
    const near = nearestKey(key, MAIN_SECTIONS);
    const hint =
      near === undefined ? `sections are ${MAIN_SECTIONS.map((x) => `[${x}]`).join(', ')}` : `did you mean [${near}]?`;
    mainErrs.at(e.keyLoc, key, `unknown section or key at top level; ${hint}`);
  }
  const empty: LTable = { kind: 'table', loc: root.loc, entries: new Map() };
  const sec = (name: string) => subTable(mainErrs, root, name) ?? empty;
  const d = readSection(mainErrs, sec('daemon'), DAEMON_SPEC, 'daemon.').values;
  const k = readSection(mainErrs, sec('kernel'), KERNEL_SPEC, 'kernel.').values;
  const m = readSection(mainErrs, sec('metrics'), METRICS_SPEC, 'metrics.').values;
  const s = readSection(mainErrs, sec('startup'), STARTUP_SPEC, 'startup.').values;
  // [log]: default, format, and any other key is a subsystem level.
  const logTable = sec('log');
  const l = readSection(
    mainErrs,
    { ...logTable, entries: new Map([...logTable.entries].filter(([key]) => key in LOG_SPEC)) },
    LOG_SPEC,
    'log.',
  ).values;
  const subsystems: Record<string, LogLevel> = {};
  for (const [key, e] of logTable.entries) {
    if (key in LOG_SPEC) continue;
    const r = logLevel(e.node);
    if (r.ok) subsystems[key] = r.value;
    else mainErrs.at(e.node.loc, `log.${key}`, `expected a log level (${r.expected}), found ${r.found}`);
  }
  const defaultsTable = subTable(mainErrs, root, 'defaults');
  const defaults = defaultsTable === undefined ? undefined : peerLayer(mainErrs, defaultsTable, 'defaults.');
  if (defaults?.read.values.name !== undefined)
    mainErrs.at(defaults.read.locs.get('name')!, 'defaults.name', 'a peer name cannot be a default');
  if (defaults?.read.values.address !== undefined)
    mainErrs.at(defaults.read.locs.get('address')!, 'defaults.address', 'an address cannot be a default');

  const reqidMin = k.reqid_min ?? DEFAULT_OWNERSHIP.reqidMin;
  const reqidMax = k.reqid_max ?? DEFAULT_OWNERSHIP.reqidMax;
  if (reqidMin > reqidMax) mainErrs.whole('key "kernel.reqid_min": must not exceed kernel.reqid_max');

  const baseDir = dirname(mainPath);
  const peersDirKey = d.peers_dir;
  const peersDir =
    peersDirKey === undefined
      ? join(baseDir, 'peers.d')
      : isAbsolute(peersDirKey)
        ? peersDirKey
        : join(baseDir, peersDirKey);
  const config: Omit<Config, 'peers'> = {
    file: mainPath,
    daemon: {
      stateDir: d.state_dir ?? '/var/lib/coati',
      socket: d.socket ?? '/run/coati/coati.sock',
      socketGroup: d.socket_group ?? null,
      listen: d.listen ?? ['0.0.0.0', '::'],
      port: d.port ?? 500,
      nattPort: d.natt_port ?? 4500,
      keylog: d.keylog ?? null,
      shutdown: d.shutdown ?? 'keep',
      allowInlineSecrets: d.allow_inline_secrets ?? false,
      peersDir,
    },
    kernel: {
      backend: k.backend ?? 'xfrm',
      reqidMin,
      reqidMax,
      policyPriority: k.policy_priority ?? 0,
      spdHash: {
        ...(k.spd_hash_v4 !== undefined ? { v4: k.spd_hash_v4 } : {}),
        ...(k.spd_hash_v6 !== undefined ? { v6: k.spd_hash_v6 } : {}),
      },
    },
    metrics: {
      prometheusListen: m.prometheus_listen ?? null,
      graphite: m.graphite ?? null,
      graphitePrefix: m.graphite_prefix ?? 'coati',
      graphiteIntervalMs: m.graphite_interval ?? 60_000,
    },
    startup: {
      maxConcurrentInitiations: s.max_concurrent_initiations ?? 16,
      initiationJitterMs: s.initiation_jitter ?? 5_000,
    },
    log: { default: l.default ?? 'info', subsystems, format: l.format ?? 'journal' },
  };

  // Peer files
  let names: string[] = [];
  try {
    names = (await fsp.readdir(peersDir)).filter((n) => n.endsWith('.toml')).sort();
  } catch (e) {
    if (peersDirKey !== undefined || (e as { code?: string }).code !== 'ENOENT') {
      new FileErrors(peersDir, errors).whole(`cannot read peers directory: ${(e as Error).message}`);
    }
  }
  const peers = new Map<string, PeerConfig>();
  const byAddress = new Map<string, PeerConfig>();
  const ctx = {
    baseDir: resolve(baseDir),
    allowInlineSecrets: config.daemon.allowInlineSecrets,
    uid: opts.uid ?? process.getuid?.() ?? 0,
  };
  for (const n of names) {
    const file = join(peersDir, n);
    const errs = new FileErrors(file, errors);
    const tree = await readTree(file, errs);
    if (tree === undefined) continue;
    const layer = peerLayer(errs, tree, '');
    const peer = await resolvePeer(basename(n, '.toml'), defaults, layer, ctx);
    if (peer === undefined) continue;
    const nameLoc = layer.read.locs.get('name') ?? { line: 1, column: 1 };
    const prev = peers.get(peer.name);
    if (prev !== undefined) {
      errs.at(nameLoc, 'name', `duplicate peer name "${peer.name}", also used by ${prev.file}`);
      continue;
    }
    const same = byAddress.get(peer.address);
    if (same !== undefined) {
      errs.at(
        layer.read.locs.get('address') ?? nameLoc,
        'address',
        `duplicate peer address ${peer.address}, also used by peer "${same.name}" (${same.file})`,
      );
      continue;
    }
    peers.set(peer.name, peer);
    byAddress.set(peer.address, peer);
  }

  if (errors.length > 0) {
    const seen = new Set<string>();
    const unique = errors.filter((e) => {
      const f = formatConfigError(e);
      if (seen.has(f)) return false;
      seen.add(f);
      return true;
    });
    for (const p of peers.values()) {
      p.psk?.destroy();
      p.key?.destroy();
    }
    return { ok: false, errors: unique };
  }
  return { ok: true, config: { ...config, peers } };
}
