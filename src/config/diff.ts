/**
 * diffConfig(old, new): which peers a reload must touch, and which daemon
 * settings only take effect on restart.
 */
import { isSecret, type Secret } from './secret.js';
import type { Config } from './types.js';

export interface ConfigDiff {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
  /** Dotted keys (e.g. "daemon.port") that need a restart to take effect. */
  daemonChanged: string[];
  /** Dotted keys that a reload applies in place (log levels, metrics, startup pacing). */
  liveChanged: string[];
}

/** Structural equality; secrets compare by content (constant time), Maps and arrays by entries. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (isSecret(a) || isSecret(b)) return isSecret(a) && isSecret(b) && (a as Secret).equals(b as Secret);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k))) return false;
    return true;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const rb = b as Record<string, unknown>;
  const ra = a as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(rb, k) && deepEqual(ra[k], rb[k]));
}

function changedKeys(section: string, a: object, b: object): string[] {
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  return [...keys].filter((k) => !deepEqual(ra[k], rb[k])).map((k) => `${section}.${k}`);
}

export function diffConfig(oldC: Config, newC: Config): ConfigDiff {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  const unchanged: string[] = [];
  for (const [name, peer] of newC.peers) {
    const prev = oldC.peers.get(name);
    if (prev === undefined) added.push(name);
    else if (deepEqual({ ...prev, file: '' }, { ...peer, file: '' })) unchanged.push(name);
    else changed.push(name);
  }
  for (const name of oldC.peers.keys()) if (!newC.peers.has(name)) removed.push(name);
  // Live: the keylog and shutdown policy are read when used; peers_dir on the next reload.
  const live = new Set(['daemon.keylog', 'daemon.shutdown', 'daemon.allowInlineSecrets', 'daemon.peersDir']);
  const daemonKeys = [
    ...changedKeys('daemon', oldC.daemon, newC.daemon),
    ...changedKeys('kernel', oldC.kernel, newC.kernel),
  ];
  return {
    added: added.sort(),
    removed: removed.sort(),
    changed: changed.sort(),
    unchanged: unchanged.sort(),
    daemonChanged: daemonKeys.filter((k) => !live.has(k)),
    liveChanged: [
      ...daemonKeys.filter((k) => live.has(k)),
      ...changedKeys('log', oldC.log, newC.log),
      ...changedKeys('metrics', oldC.metrics, newC.metrics),
      ...changedKeys('startup', oldC.startup, newC.startup),
    ],
  };
}
