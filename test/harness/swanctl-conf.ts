/**
 * swanctl.conf text from a typed description of connections, and a parser for
 * swanctl's `--pretty` output (used for `--list-sas`).
 */

export type Auth = 'psk' | 'pubkey';

export interface ChildSpec {
  name: string;
  localTs: string[];
  remoteTs: string[];
  espProposals?: string[];
  mode?: 'tunnel' | 'transport';
  /** IKEv2 + IKEv1 child options (swanctl names: start_action, dpd_action, close_action). */
  startAction?: 'none' | 'trap' | 'start' | 'trap|start';
  dpdAction?: 'clear' | 'trap' | 'restart' | 'none';
  closeAction?: 'none' | 'trap' | 'start';
  rekeyTime?: string;
  lifeTime?: string;
  /** Extra raw `key = value` lines inside the child section. */
  extra?: Record<string, string>;
}

export interface ConnSpec {
  name: string;
  version: 1 | 2;
  localAddrs: string[];
  remoteAddrs: string[];
  localId?: string;
  remoteId?: string;
  auth: Auth;
  /** PSK (writes a secrets entry for localId/remoteId, or the addresses when no ids). */
  psk?: string;
  /** For auth=pubkey: certificate file names in SWANCTL_DIR/x509. */
  localCert?: string;
  proposals?: string[];
  aggressive?: boolean;
  encap?: boolean;
  mobike?: boolean;
  dpdDelay?: string;
  dpdTimeout?: string;
  rekeyTime?: string;
  reauthTime?: string;
  overTime?: string;
  unique?: 'no' | 'never' | 'keep' | 'replace';
  keyingtries?: number;
  localPort?: number;
  remotePort?: number;
  /** Extra raw `key = value` lines in the connection section. */
  extra?: Record<string, string>;
  children: ChildSpec[];
}

const list = (v: string[]) => v.join(',');

function lines(indent: string, entries: [string, string | number | boolean | undefined][]): string[] {
  const out: string[] = [];
  for (const [k, v] of entries) {
    if (v === undefined) continue;
    out.push(`${indent}${k} = ${typeof v === 'boolean' ? (v ? 'yes' : 'no') : v}`);
  }
  return out;
}

/** A complete swanctl.conf (connections + secrets) for the given connections. */
export function swanctlConf(conns: ConnSpec[]): string {
  const out: string[] = ['connections {'];
  const secrets: string[] = [];
  for (const c of conns) {
    out.push(`  ${c.name} {`);
    out.push(
      ...lines('    ', [
        ['version', c.version],
        ['local_addrs', list(c.localAddrs)],
        ['remote_addrs', list(c.remoteAddrs)],
        ['local_port', c.localPort],
        ['remote_port', c.remotePort],
        ['proposals', c.proposals ? list(c.proposals) : undefined],
        ['aggressive', c.aggressive],
        ['encap', c.encap],
        ['mobike', c.mobike],
        ['dpd_delay', c.dpdDelay],
        ['dpd_timeout', c.dpdTimeout],
        ['rekey_time', c.rekeyTime],
        ['reauth_time', c.reauthTime],
        ['over_time', c.overTime],
        ['unique', c.unique],
        ['keyingtries', c.keyingtries],
        ...Object.entries(c.extra ?? {}),
      ]),
    );
    out.push(
      '    local {',
      ...lines('      ', [
        ['auth', c.auth],
        ['id', c.localId],
        ['certs', c.localCert],
      ]),
      '    }',
    );
    out.push(
      '    remote {',
      ...lines('      ', [
        ['auth', c.auth],
        ['id', c.remoteId],
      ]),
      '    }',
    );
    out.push('    children {');
    for (const ch of c.children) {
      out.push(`      ${ch.name} {`);
      out.push(
        ...lines('        ', [
          ['local_ts', list(ch.localTs)],
          ['remote_ts', list(ch.remoteTs)],
          ['esp_proposals', ch.espProposals ? list(ch.espProposals) : undefined],
          ['mode', ch.mode ?? 'tunnel'],
          ['start_action', ch.startAction],
          ['dpd_action', ch.dpdAction],
          ['close_action', ch.closeAction],
          ['rekey_time', ch.rekeyTime],
          ['life_time', ch.lifeTime],
          ...Object.entries(ch.extra ?? {}),
        ]),
      );
      out.push('      }');
    }
    out.push('    }', '  }');
    if (c.psk !== undefined) {
      const ids =
        c.localId && c.remoteId
          ? [c.localId, c.remoteId]
          : [...c.localAddrs.filter((a) => a !== '%any'), ...c.remoteAddrs.filter((a) => a !== '%any')];
      secrets.push(`  ike-${c.name} {`);
      ids.forEach((id, i) => {
        secrets.push(`    id-${i + 1} = ${id}`);
      });
      secrets.push(`    secret = "${c.psk.replace(/"/g, '\\"')}"`, '  }');
    }
  }
  out.push('}', 'secrets {', ...secrets, '}', '');
  return out.join('\n');
}

/** The same connection seen from the peer: addresses, ids and traffic selectors swapped. */
export function mirrorConn(c: ConnSpec, overrides: Partial<ConnSpec> = {}): ConnSpec {
  return {
    ...c,
    localAddrs: c.remoteAddrs,
    remoteAddrs: c.localAddrs,
    localId: c.remoteId,
    remoteId: c.localId,
    localPort: c.remotePort,
    remotePort: c.localPort,
    children: c.children.map((ch) => ({ ...ch, localTs: ch.remoteTs, remoteTs: ch.localTs })),
    ...overrides,
  };
}

/** A value in swanctl's pretty-printed vici messages: string, list of strings, or section. */
export type ViciValue = string | string[] | ViciSection;
export interface ViciSection {
  [key: string]: ViciValue;
}

/**
 * Parses swanctl `--pretty` output: a sequence of `name {`...`}` sections containing
 * `key = value`, `key = [` ... `]` lists and nested sections. Returns one entry per
 * top-level message (e.g. `list-sa event`), in order.
 */
export function parsePretty(text: string): { name: string; body: ViciSection }[] {
  const out: { name: string; body: ViciSection }[] = [];
  const stack: ViciSection[] = [];
  let listTarget: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (listTarget) {
      if (line === ']') listTarget = undefined;
      else listTarget.push(line);
      continue;
    }
    if (line.endsWith(' {') || line === '{') {
      const name = line.slice(0, -1).trim();
      const sec: ViciSection = {};
      const parent = stack[stack.length - 1];
      if (parent) parent[name] = sec;
      else out.push({ name, body: sec });
      stack.push(sec);
      continue;
    }
    if (line === '}') {
      if (!stack.pop()) throw new Error(`parsePretty: unbalanced '}' in:\n${text}`);
      continue;
    }
    const eq = line.indexOf(' = ');
    const cur = stack[stack.length - 1];
    if (eq < 0 || !cur) continue; // informational lines (e.g. "no IKE_SAs found")
    const key = line.slice(0, eq);
    const value = line.slice(eq + 3);
    if (value === '[') {
      listTarget = [];
      cur[key] = listTarget;
    } else {
      cur[key] = value;
    }
  }
  if (stack.length) throw new Error(`parsePretty: unterminated section in:\n${text}`);
  return out;
}
