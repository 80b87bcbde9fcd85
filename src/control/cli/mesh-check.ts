/**
 * Offline consistency check across the status reports of many hosts.
 *
 * How hosts are matched: every report is indexed under its `host` name, its
 * `localAddresses`, and the `localId` of each of its peers. A peer entry on
 * host A refers to host B when the peer's `address` is one of B's
 * `localAddresses`; failing that, when its `remoteId` is B's host name or one
 * of B's local identities. Peers that match no supplied report are listed as
 * warnings (their host was not part of the input), never as errors.
 *
 * For each pair of hosts that refer to each other the check demands:
 *  - both sides agree whether the relationship is up (`up`/`rekeying`),
 *  - a side that is up has a counterpart entry at all,
 *  - the IKE SA SPI pair is the same on both sides and the roles complement,
 *  - every installed Child SA's outbound SPI is an inbound SPI on the other
 *    side, and that SA's outbound SPI is our inbound SPI,
 *  - at most one established IKE SA per host pair, no duplicate installed Child SAs.
 */
import type { PeerStatus, StatusReport } from '../types.js';

export type MeshIssueKind =
  | 'asymmetric'
  | 'missing-peer'
  | 'one-sided-config'
  | 'ike-spi-mismatch'
  | 'ike-role-mismatch'
  | 'child-spi-mismatch'
  | 'duplicate-ike'
  | 'duplicate-child'
  | 'duplicate-host'
  | 'unmatched-peer'
  | 'stale-report';

export interface MeshIssue {
  kind: MeshIssueKind;
  severity: 'error' | 'warning';
  hosts: string[];
  peer?: string;
  message: string;
}

export interface MeshResult {
  ok: boolean;
  hosts: number;
  pairs: number;
  issues: MeshIssue[];
}

const LIVE = new Set(['up', 'rekeying']);
/** Reports taken further apart than this are flagged: a mismatch may just be time passing. */
const MAX_SKEW_MS = 5 * 60 * 1000;

const norm = (s: string) => s.trim().toLowerCase();

export function checkMesh(input: StatusReport[]): MeshResult {
  // Shared host names (namespaces of one machine) get their first address for a label.
  const named = new Map<string, number>();
  for (const r of input) named.set(norm(r.host), (named.get(norm(r.host)) ?? 0) + 1);
  const reports = input.map((r) =>
    (named.get(norm(r.host)) ?? 0) > 1 && r.localAddresses[0] ? { ...r, host: `${r.host}/${r.localAddresses[0]}` } : r,
  );
  const issues: MeshIssue[] = [];
  const issue = (i: MeshIssue) => issues.push(i);

  // Index hosts by every key they can be recognised by.
  const byKey = new Map<string, number>();
  const addressOf = new Map<string, number>();
  // A host name shared by several reports is not an identity (see the labels above).
  reports.forEach((r, idx) => {
    const hostKey = (named.get(norm(input[idx]?.host ?? '')) ?? 0) > 1 ? [] : [r.host];
    const keys = new Set([...hostKey, ...r.peers.map((p) => p.localId)].map(norm));
    for (const a of r.localAddresses) addressOf.set(norm(a), idx);
    for (const k of keys) {
      const other = byKey.get(k);
      if (other !== undefined && other !== idx) {
        const a = reports[other]?.host ?? '?';
        issue({
          kind: 'duplicate-host',
          severity: 'error',
          hosts: [a, r.host],
          message: `${a} and ${r.host} both claim identity ${k} (the same host given twice?)`,
        });
      } else byKey.set(k, idx);
    }
  });

  const resolve = (p: PeerStatus): number | undefined => addressOf.get(norm(p.address)) ?? byKey.get(norm(p.remoteId));

  // entries[a][b] = peer entries on host a that refer to host b
  const entries = reports.map(() => new Map<number, PeerStatus[]>());
  reports.forEach((r, a) => {
    for (const p of r.peers) {
      const b = resolve(p);
      if (b === undefined) {
        issue({
          kind: 'unmatched-peer',
          severity: 'warning',
          hosts: [r.host],
          peer: p.name,
          message: `${r.host}: peer ${p.name} (${p.address}, ${p.remoteId}) matches no supplied report`,
        });
        continue;
      }
      if (b === a) continue;
      const list = entries[a]?.get(b) ?? [];
      list.push(p);
      entries[a]?.set(b, list);
    }
  });

  const times = reports.map((r) => Date.parse(r.generatedAt)).filter((t) => !Number.isNaN(t));
  if (times.length > 1 && Math.max(...times) - Math.min(...times) > MAX_SKEW_MS) {
    issue({
      kind: 'stale-report',
      severity: 'warning',
      hosts: reports.map((r) => r.host),
      message: `reports were taken ${Math.round((Math.max(...times) - Math.min(...times)) / 1000)}s apart; differences may be time passing`,
    });
  }

  let pairs = 0;
  for (let a = 0; a < reports.length; a++) {
    for (let b = a + 1; b < reports.length; b++) {
      const ab = entries[a]?.get(b) ?? [];
      const ba = entries[b]?.get(a) ?? [];
      if (ab.length === 0 && ba.length === 0) continue;
      pairs++;
      checkPair(reports[a] as StatusReport, ab, reports[b] as StatusReport, ba, issue);
    }
  }
  // Errors first; otherwise in discovery order (stable sort).
  issues.sort((x, y) => (x.severity === y.severity ? 0 : x.severity === 'error' ? -1 : 1));
  return { ok: !issues.some((i) => i.severity === 'error'), hosts: reports.length, pairs, issues };
}

function primary(list: PeerStatus[]): PeerStatus | undefined {
  return list.find((p) => p.ike && LIVE.has(p.state)) ?? list.find((p) => LIVE.has(p.state)) ?? list[0];
}

function checkPair(
  A: StatusReport,
  ab: PeerStatus[],
  B: StatusReport,
  ba: PeerStatus[],
  issue: (i: MeshIssue) => void,
): void {
  const hosts = [A.host, B.host];
  for (const [X, xy, Y, yx] of [
    [A, ab, B, ba],
    [B, ba, A, ab],
  ] as const) {
    if (yx.length === 0) {
      const live = xy.find((p) => LIVE.has(p.state));
      if (live) {
        issue({
          kind: 'missing-peer',
          severity: 'error',
          hosts,
          peer: live.name,
          message: `${X.host} says ${live.state} with ${Y.host} (peer ${live.name}), but ${Y.host} has no peer for ${X.host}`,
        });
      } else {
        issue({
          kind: 'one-sided-config',
          severity: 'warning',
          hosts,
          peer: xy[0]?.name,
          message: `${X.host} has peer ${xy[0]?.name} for ${Y.host}, but ${Y.host} has no peer for ${X.host}`,
        });
      }
    }
    const established = xy.filter((p) => p.ike && LIVE.has(p.state));
    if (established.length > 1) {
      issue({
        kind: 'duplicate-ike',
        severity: 'error',
        hosts,
        message: `${X.host} has ${established.length} IKE SAs with ${Y.host}: ${established
          .map((p) => `${p.name} ${p.ike?.spiI}_i`)
          .join(', ')}`,
      });
    }
    for (const p of xy) {
      checkDuplicateIke(X, p, hosts, issue);
      checkDuplicateChildren(X.host, p, hosts, issue);
    }
  }

  const pa = primary(ab);
  const pb = primary(ba);
  if (!pa || !pb) return;
  const liveA = LIVE.has(pa.state);
  const liveB = LIVE.has(pb.state);
  if (liveA !== liveB) {
    const [up, upP, other, otherP] = liveA ? [A, pa, B, pb] : [B, pb, A, pa];
    issue({
      kind: 'asymmetric',
      severity: 'error',
      hosts,
      peer: upP.name,
      message: `${up.host} says ${upP.state} with ${other.host} (peer ${upP.name}), ${other.host} says ${otherP.state} (peer ${otherP.name})`,
    });
    return;
  }
  if (!liveA) return;
  if (pa.ike && pb.ike) {
    const same = norm(pa.ike.spiI) === norm(pb.ike.spiI) && norm(pa.ike.spiR) === norm(pb.ike.spiR);
    if (!same) {
      issue({
        kind: 'ike-spi-mismatch',
        severity: 'error',
        hosts,
        peer: pa.name,
        message: `IKE SA differs: ${A.host} has ${pa.ike.spiI}_i ${pa.ike.spiR}_r, ${B.host} has ${pb.ike.spiI}_i ${pb.ike.spiR}_r`,
      });
    } else if (pa.ike.role === pb.ike.role) {
      issue({
        kind: 'ike-role-mismatch',
        severity: 'error',
        hosts,
        peer: pa.name,
        message: `both ${A.host} and ${B.host} claim to be ${pa.ike.role} of IKE SA ${pa.ike.spiI}_i`,
      });
    }
  }
  checkChildren(A.host, pa, B.host, pb, hosts, issue);
  checkChildren(B.host, pb, A.host, pa, hosts, issue);
}

/**
 * Two established IKE SAs inside one relationship (the peer's `otherIkeSas`).
 * Crossing streams and rekeys legitimately overlap for a few seconds, so a
 * pair younger than DUPLICATE_GRACE_MS is a warning; older, an error.
 */
const DUPLICATE_GRACE_MS = 60_000;

function checkDuplicateIke(X: StatusReport, p: PeerStatus, hosts: string[], issue: (i: MeshIssue) => void): void {
  const up = [p.ike, ...(p.otherIkeSas ?? [])].filter((s) => s?.state === 'established');
  if (up.length < 2) return;
  const newest = Math.max(...up.map((s) => Date.parse(s?.establishedAt ?? '') || 0));
  const ageMs = (Date.parse(X.generatedAt) || Date.now()) - newest;
  issue({
    kind: 'duplicate-ike',
    severity: ageMs > DUPLICATE_GRACE_MS ? 'error' : 'warning',
    hosts,
    peer: p.name,
    message: `${X.host}: peer ${p.name} has ${up.length} established IKE SAs (${up
      .map((s) => `${s?.spiI}_i`)
      .join(', ')}), the newest ${Math.round(ageMs / 1000)} s old`,
  });
}

function checkDuplicateChildren(host: string, p: PeerStatus, hosts: string[], issue: (i: MeshIssue) => void): void {
  const seen = new Map<string, string>();
  for (const c of [...p.children, ...(p.otherIkeSas ?? []).flatMap((o) => o.children)]) {
    if (c.state !== 'installed') continue;
    const key = `${c.name}|${[...c.localTs].sort().join(',')}|${[...c.remoteTs].sort().join(',')}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      issue({
        kind: 'duplicate-child',
        severity: 'error',
        hosts,
        peer: p.name,
        message: `${host}: peer ${p.name} has two installed Child SAs ${c.name} for the same selectors (${prev}_i and ${c.spiIn}_i)`,
      });
    } else seen.set(key, c.spiIn);
  }
}

function checkChildren(
  xHost: string,
  x: PeerStatus,
  yHost: string,
  y: PeerStatus,
  hosts: string[],
  issue: (i: MeshIssue) => void,
): void {
  for (const c of x.children) {
    if (c.state !== 'installed') continue;
    const twin = y.children.find((d) => norm(d.spiIn) === norm(c.spiOut));
    if (!twin) {
      issue({
        kind: 'child-spi-mismatch',
        severity: 'error',
        hosts,
        peer: x.name,
        message: `${xHost} child ${c.name} sends with SPI ${c.spiOut}, which ${yHost} has no inbound SA for`,
      });
    } else if (norm(twin.spiOut) !== norm(c.spiIn)) {
      issue({
        kind: 'child-spi-mismatch',
        severity: 'error',
        hosts,
        peer: x.name,
        message: `${xHost} child ${c.name} receives on SPI ${c.spiIn}, but ${yHost} child ${twin.name} sends with ${twin.spiOut}`,
      });
    }
  }
}

/** Structural check of decoded input, naming the first problem. */
export function asStatusReport(v: unknown, source: string): StatusReport {
  const fail = (what: string): never => {
    throw new Error(`${source}: not a coati status report: ${what}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('expected a JSON object');
  const r = v as Record<string, unknown>;
  if (typeof r.host !== 'string') fail('"host" must be a string');
  if (!Array.isArray(r.localAddresses) || !r.localAddresses.every((a) => typeof a === 'string')) {
    fail('"localAddresses" must be an array of strings');
  }
  if (!Array.isArray(r.peers)) fail('"peers" must be an array');
  (r.peers as unknown[]).forEach((p, i) => {
    const q = p as Record<string, unknown> | null;
    if (typeof q !== 'object' || q === null) fail(`peers[${i}] must be an object`);
    for (const k of ['name', 'address', 'localId', 'remoteId', 'state'] as const) {
      if (typeof q?.[k] !== 'string') fail(`peers[${i}].${k} must be a string`);
    }
    if (!Array.isArray(q?.children)) fail(`peers[${i}].children must be an array`);
  });
  return v as StatusReport;
}

export function renderMesh(result: MeshResult): string {
  const out: string[] = [];
  for (const i of result.issues)
    out.push(`${i.severity === 'error' ? 'ERROR' : 'warn '} ${i.kind.padEnd(18)} ${i.message}`);
  const errors = result.issues.filter((i) => i.severity === 'error').length;
  const warnings = result.issues.length - errors;
  out.push(
    `${result.ok ? 'consistent' : 'INCONSISTENT'}: ${result.hosts} hosts, ${result.pairs} pairs checked, ${errors} errors, ${warnings} warnings`,
  );
  return `${out.join('\n')}\n`;
}
