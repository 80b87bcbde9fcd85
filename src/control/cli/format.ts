/** Human-readable rendering for coatictl: aligned tables, durations, optional colour. */
import type {
  ActionResult,
  ChildSaStatus,
  ControlEvent,
  IkeSaStatus,
  PeerState,
  PeerStatus,
  ReloadResult,
  StatusReport,
} from '../types.js';

const ANSI: Record<string, string> = { green: '32', yellow: '33', red: '31', dim: '2', cyan: '36' };

const STATE_COLOUR: Record<PeerState, string> = {
  up: 'green',
  rekeying: 'cyan',
  connecting: 'yellow',
  down: 'red',
  idle: 'dim',
  trap: 'dim',
};

export function paint(text: string, colour: string | undefined, enabled: boolean): string {
  const code = colour && ANSI[colour];
  return enabled && code ? `\x1b[${code}m${text}\x1b[0m` : text;
}

export function colourState(state: string, enabled: boolean): string {
  return paint(state, STATE_COLOUR[state as PeerState], enabled);
}

/** 0s, 45s, 3m12s, 1h02m, 2d03h: two units at most. */
export function formatDuration(totalSec: number): string {
  const s = Math.max(0, Math.floor(totalSec));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** "3m12s ago", "in 50m00s", or "-" when absent or unparseable. */
export function relative(iso: string | undefined, nowMs: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '-';
  const d = (nowMs - t) / 1000;
  return d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
}

/** 64-bit decimal counter string → "1.5 GiB"; malformed input shows as-is. */
export function formatBytes(dec: string): string {
  if (!/^\d+$/.test(dec)) return dec;
  let n = Number(BigInt(dec));
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function sumCounters(values: string[]): string {
  let total = 0n;
  for (const v of values) if (/^\d+$/.test(v)) total += BigInt(v);
  return total.toString();
}

/**
 * Align columns on their plain text; `decorate` may then wrap a padded cell
 * (e.g. in colour) without disturbing the alignment.
 */
export function table(
  headers: string[],
  rows: string[][],
  decorate?: (col: number, value: string, padded: string) => string,
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[], deco: boolean) =>
    cells
      .map((c, i) => {
        const last = i === cells.length - 1;
        const padded = last ? c : c.padEnd(widths[i] ?? 0);
        return deco && decorate ? decorate(i, c, padded) : padded;
      })
      .join('  ')
      .trimEnd();
  return [line(headers, false), ...rows.map((r) => line(r, true))].join('\n');
}

function natLabel(p: PeerStatus): string {
  const { local, remote } = p.natDetected;
  if (local && remote) return 'both';
  if (local) return 'local';
  if (remote) return 'remote';
  return '-';
}

function childSummary(children: ChildSaStatus[]): string {
  if (children.length === 0) return '-';
  const installed = children.filter((c) => c.state === 'installed').length;
  return `${installed}/${children.length}`;
}

/** Start-up or a reload still pacing its initiations: how many wait and how many hold a slot. */
function pacedLine(i: StatusReport['initiations']): string {
  if (!i || (i.queued === 0 && i.inFlight === 0)) return '';
  return `\npaced initiations (start-up, reload): ${i.queued} waiting, ${i.inFlight} of ${i.maxConcurrent} slots in use`;
}

export function renderStatus(report: StatusReport, nowMs: number, colour: boolean): string {
  const counts = new Map<string, number>();
  for (const p of report.peers) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
  const summary = [...counts].map(([s, n]) => `${n} ${colourState(s, colour)}`).join(', ') || 'no peers';
  const head =
    `${report.host}: coatid ${report.daemonVersion}, pid ${report.pid}, up ${formatDuration(report.uptimeSec)}` +
    ` (since ${report.startedAt}); ${report.peers.length} peers: ${summary}` +
    pacedLine(report.initiations);
  if (report.peers.length === 0) return `${head}\n`;
  const headers = ['PEER', 'ADDRESS', 'V', 'STATE', 'IKE SA', 'CHILD', 'IN/OUT', 'LAST IN', 'DPD', 'NAT', 'ERROR'];
  const rows = report.peers.map((p) => [
    p.name,
    p.remotePort === 500 || p.remotePort === 4500 ? p.address : `${p.address}:${p.remotePort}`,
    `v${p.version}`,
    p.state,
    (p.ike ? `${p.ike.state} ${relative(p.ike.establishedAt, nowMs)}` : '-') +
      (p.otherIkeSas?.length ? ` (+${p.otherIkeSas.length})` : ''),
    childSummary(p.children),
    p.children.length
      ? `${formatBytes(sumCounters(p.children.map((c) => c.bytesIn)))}/${formatBytes(sumCounters(p.children.map((c) => c.bytesOut)))}`
      : '-',
    relative(p.lastInboundAt, nowMs),
    p.livenessFailures > 0 ? `${p.livenessFailures} fail` : 'ok',
    natLabel(p),
    p.lastError ? `${p.lastError.code} ${relative(p.lastError.at, nowMs)}` : '',
  ]);
  const body = table(headers, rows, (col, value, padded) => {
    if (col === 3) return padded.replace(value, colourState(value, colour));
    if (col === 10 && value) return paint(padded, 'red', colour);
    return padded;
  });
  return `${head}\n\n${body}\n`;
}

/** The full picture of one relationship: everything needed to decide whether to force renegotiation. */
export function renderPeerDetail(report: StatusReport, p: PeerStatus, nowMs: number, colour: boolean): string {
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`  ${`${k}:`.padEnd(16)} ${v}`);
  out.push(`${p.name} on ${report.host}: ${colourState(p.state, colour)}`);
  kv('remote', `${p.address} port ${p.remotePort}, IKEv${p.version}`);
  kv('identities', `local ${p.localId}, remote ${p.remoteId}`);
  kv('NAT', natLabel(p) === '-' ? 'none detected' : `behind NAT: ${natLabel(p)}`);
  kv('last inbound', relative(p.lastInboundAt, nowMs));
  kv('liveness', `checked ${relative(p.lastLivenessCheckAt, nowMs)}, ${p.livenessFailures} consecutive failures`);
  if (p.lastError) {
    kv(
      'last error',
      paint(`${p.lastError.code}: ${p.lastError.message} (${relative(p.lastError.at, nowMs)})`, 'red', colour),
    );
  }
  const ikeSa = (title: string, ike: IkeSaStatus) => {
    out.push(`  ${title}:`);
    kv('  SPIs', `${ike.spiI}_i ${ike.spiR}_r (${ike.role})`);
    kv('  state', `${ike.state}, ${ike.algorithms}`);
    kv('  established', relative(ike.establishedAt, nowMs));
    kv('  rekey', `${relative(ike.rekeyAt, nowMs)}, expires ${relative(ike.expiresAt, nowMs)}`);
    if (p.version === 2) kv('  message IDs', `out ${ike.messageIdOut}, in ${ike.messageIdIn}`);
  };
  if (p.ike) ikeSa('IKE SA', p.ike);
  else out.push('  IKE SA:          none');
  childTable(out, p.children, nowMs);
  for (const [i, other] of (p.otherIkeSas ?? []).entries()) {
    ikeSa(`other IKE SA ${i + 1} of ${p.otherIkeSas?.length}`, other);
    childTable(out, other.children, nowMs);
  }
  return `${out.join('\n')}\n`;
}

function childTable(out: string[], children: ChildSaStatus[], nowMs: number): void {
  if (children.length === 0) {
    out.push('  Child SAs:       none');
  } else {
    out.push('  Child SAs:');
    const rows = children.map((c) => [
      c.name,
      c.state,
      `${c.spiIn}_i ${c.spiOut}_o`,
      `${c.mode}${c.encap ? '+udp' : ''}`,
      c.algorithms,
      `${c.localTs.join(',')} === ${c.remoteTs.join(',')}`,
      `${formatBytes(c.bytesIn)} (${c.packetsIn} pkts) / ${formatBytes(c.bytesOut)} (${c.packetsOut} pkts)`,
      relative(c.lastUsedAt, nowMs),
      relative(c.rekeyAt, nowMs),
    ]);
    const t = table(['NAME', 'STATE', 'SPIS', 'MODE', 'ALGS', 'TS', 'IN / OUT', 'USED', 'REKEY'], rows);
    out.push(...t.split('\n').map((l) => `    ${l}`));
  }
}

export function renderAction(verb: string, r: ActionResult, colour: boolean): string {
  const out: string[] = [];
  if (r.message) out.push(`${verb}: ${r.message}`);
  if (r.peers.length > 0) {
    const rows = r.peers.map((p) => [
      p.peer,
      p.ok ? 'ok' : 'FAILED',
      p.liveness ? `${p.liveness}${p.rttMs !== undefined ? ` ${p.rttMs}ms` : ''}` : '',
      p.message ?? '',
    ]);
    const headers = r.peers.some((p) => p.liveness)
      ? ['PEER', 'RESULT', 'LIVENESS', 'MESSAGE']
      : ['PEER', 'RESULT', '', 'MESSAGE'];
    out.push(
      table(headers, rows, (col, value, padded) =>
        col === 1 ? paint(padded, value === 'ok' ? 'green' : 'red', colour) : padded,
      ),
    );
  }
  if (out.length === 0) out.push(`${verb}: ${r.ok ? 'ok' : 'failed'}`);
  return `${out.join('\n')}\n`;
}

export function renderReload(r: ReloadResult): string {
  if (!r.ok)
    return `${r.errors.map((e) => `${e.file}:${e.line}: ${e.message}`).join('\n')}\nreload: configuration rejected, nothing changed\n`;
  const list = (k: string, v: string[]) => `  ${`${k}:`.padEnd(11)} ${v.length ? v.join(', ') : '-'}`;
  return `reload: ok\n${[list('added', r.added), list('removed', r.removed), list('changed', r.changed), `  unchanged:  ${r.unchanged.length}`].join('\n')}\n`;
}

/** One event per line: time, type, then key=value pairs. */
export function renderEvent(ev: ControlEvent, colour: boolean): string {
  const fields = Object.entries(ev)
    .filter(([k]) => k !== 'type' && k !== 'time')
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  return `${ev.time} ${paint(ev.type, ev.type.includes('fail') || ev.type.includes('dead') ? 'red' : 'cyan', colour)} ${fields.join(' ')}`.trimEnd();
}
