/**
 * Network faults inside a namespace: partitions (nftables drops or link down) and
 * random loss (`numgen random mod 100 < N drop`). Each fault is its own nftables table,
 * so faults stack and heal independently.
 */
import { type Netns, randomId } from './netns.js';

export interface Fault {
  readonly description: string;
  heal(): Promise<void>;
}

export interface Match {
  /** Only packets to or from this address (IPv4 or IPv6). */
  peer?: string;
  /** Only packets through this interface. */
  iface?: string;
  /** Only UDP packets with this source or destination port (e.g. 500, 4500). */
  udpPorts?: number[];
  /** Default both. */
  direction?: 'in' | 'out' | 'both';
}

function matchExpr(m: Match, dir: 'in' | 'out'): string {
  const parts: string[] = [];
  if (m.iface) parts.push(`${dir === 'in' ? 'iifname' : 'oifname'} "${m.iface}"`);
  if (m.peer) {
    const fam = m.peer.includes(':') ? 'ip6' : 'ip';
    parts.push(`${fam} ${dir === 'in' ? 'saddr' : 'daddr'} ${m.peer}`);
  }
  if (m.udpPorts?.length) parts.push(`udp ${dir === 'in' ? 'sport' : 'dport'} { ${m.udpPorts.join(', ')} }`);
  return parts.join(' ');
}

async function nftFault(ns: Netns, m: Match, action: string, description: string): Promise<Fault> {
  const table = `coati_fault_${randomId()}`;
  const dirs: ('in' | 'out')[] = m.direction === 'in' ? ['in'] : m.direction === 'out' ? ['out'] : ['in', 'out'];
  const rules: Record<string, string[]> = { input: [], output: [], forward: [] };
  for (const d of dirs) {
    const expr = `${matchExpr(m, d)} ${action}`;
    rules[d === 'in' ? 'input' : 'output']!.push(expr);
    rules.forward!.push(expr);
  }
  const chains = Object.entries(rules)
    .filter(([, r]) => r.length > 0)
    .map(
      ([hook, r]) =>
        `  chain ${hook} {\n    type filter hook ${hook} priority -200; policy accept;\n${r.map((x) => `    ${x}\n`).join('')}  }`,
    );
  await ns.exec(['nft', '-f', '-'], { input: `table inet ${table} {\n${chains.join('\n')}\n}\n` });
  let healed = false;
  return {
    description: `${description} in ${ns.label}`,
    heal: async () => {
      if (healed) return;
      healed = true;
      await ns.exec(['nft', 'delete', 'table', 'inet', table]);
    },
  };
}

/** Drops every matching packet (a partition) until healed. */
export function partition(ns: Netns, m: Match = {}): Promise<Fault> {
  return nftFault(ns, m, 'drop', `partition ${JSON.stringify(m)}`);
}

/** Drops `percent`% of matching packets at random until healed. */
export function randomLoss(ns: Netns, percent: number, m: Match = {}): Promise<Fault> {
  if (!(percent >= 0 && percent <= 100)) throw new Error(`randomLoss: percent ${percent} out of range`);
  const action = percent >= 100 ? 'drop' : `numgen random mod 100 < ${Math.round(percent)} drop`;
  return nftFault(ns, m, action, `${percent}% loss ${JSON.stringify(m)}`);
}

/** `ip link set <iface> down` until healed. */
export async function linkDown(ns: Netns, iface: string): Promise<Fault> {
  await ns.ip('link', 'set', iface, 'down');
  return {
    description: `link ${iface} down in ${ns.label}`,
    heal: () => ns.ip('link', 'set', iface, 'up').then(() => undefined),
  };
}

/** Removes every harness fault table in the namespace. */
export async function healAll(ns: Netns): Promise<void> {
  const r = await ns.exec(['nft', 'list', 'tables'], { allowFail: true });
  for (const m of r.stdout.matchAll(/table inet (coati_fault_\w+)/g)) {
    await ns.exec(['nft', 'delete', 'table', 'inet', m[1]!], { allowFail: true });
  }
}
