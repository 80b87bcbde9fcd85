/**
 * Reader for the charon debug logs in test/fixtures/golden/keylogs: pulls out
 * the `label => N bytes @ 0x...` hex dumps and the ESP SPIs of one connection
 * (e.g. the IKEv1 `v1-psk` IKE SA).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GOLDEN_DIR } from './golden.js';

export interface KeylogDump {
  /** What charon called it: `SKEYID_e`, `encryption key Ka`, `next IV for MID 0`, `Hash(1)`, ... */
  label: string;
  /** 1-based line number of the `=>` line. */
  line: number;
  data: Buffer;
}

export interface KeylogV1 {
  dumps: KeylogDump[];
  /** Every dump with this label, in log order. */
  all(label: string): Buffer[];
  /** The first dump with this label; throws if there is none. */
  first(label: string): Buffer;
  /** ESP SPIs as logged by `adding inbound/outbound ESP SA`. */
  inboundSpis: number[];
  outboundSpis: number[];
}

const DUMP_HEADER = /^(.*?) => (\d+) bytes @ 0x[0-9a-f]+$/;
const DUMP_LINE = /^\s*(\d+): ((?:[0-9A-F]{2} ?)+)/;
const SPI_LINE = /^\s*SPI 0x([0-9a-f]{8}), src /;

/** Parse one keylog file (a name under keylogs/, e.g. `netlink-left-keys.log`) for connection `conn`. */
export function readKeylogV1(file: string, conn = 'v1-psk'): KeylogV1 {
  const lines = readFileSync(join(GOLDEN_DIR, 'keylogs', file), 'utf8').split('\n');
  const tag = new RegExp(`^\\S+ \\S+ \\d+\\[[A-Z]+\\] <${conn.replace(/[-|]/g, '\\$&')}\\|\\d+> (.*)$`);
  const bodies: { text: string; line: number }[] = [];
  lines.forEach((l, i) => {
    const m = tag.exec(l);
    if (m) bodies.push({ text: m[1] ?? '', line: i + 1 });
  });
  const dumps: KeylogDump[] = [];
  const inboundSpis: number[] = [];
  const outboundSpis: number[] = [];
  for (let i = 0; i < bodies.length; i++) {
    const { text, line } = bodies[i]!;
    const header = DUMP_HEADER.exec(text);
    if (header) {
      const size = Number(header[2]);
      const bytes: number[] = [];
      while (bytes.length < size) {
        const next = bodies[i + 1];
        const m = next ? DUMP_LINE.exec(next.text) : null;
        if (!m || Number(m[1]) !== bytes.length) throw new Error(`${file}:${line}: truncated dump of ${header[1]}`);
        const hex = (m[2] ?? '')
          .trim()
          .split(' ')
          .slice(0, Math.min(16, size - bytes.length));
        for (const h of hex) bytes.push(Number.parseInt(h, 16));
        i++;
      }
      dumps.push({ label: header[1] ?? '', line, data: Buffer.from(bytes) });
      continue;
    }
    const spi = SPI_LINE.exec(bodies[i + 1]?.text ?? '');
    if (spi && text.trim() === 'adding inbound ESP SA') inboundSpis.push(Number.parseInt(spi[1] ?? '', 16));
    if (spi && text.trim() === 'adding outbound ESP SA') outboundSpis.push(Number.parseInt(spi[1] ?? '', 16));
  }
  const all = (label: string) => dumps.filter((d) => d.label === label).map((d) => d.data);
  return {
    dumps,
    all,
    first(label) {
      const d = all(label)[0];
      if (!d) throw new Error(`${file}: no dump labelled ${label} for ${conn}`);
      return d;
    },
    inboundSpis,
    outboundSpis,
  };
}

/** tshark's ikev1_decryption_table: initiator cookie (hex) -> encryption key. */
export function readIkev1DecryptionTable(): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const text = readFileSync(join(GOLDEN_DIR, 'tshark-keys', 'ikev1_decryption_table'), 'utf8');
  for (const l of text.split('\n')) {
    const m = /^([0-9a-f]{16}),([0-9a-f]+)$/i.exec(l.trim());
    if (m) out.set((m[1] ?? '').toLowerCase(), Buffer.from(m[2] ?? '', 'hex'));
  }
  return out;
}

/** tshark's esp_sa table: SPI -> { encryption key, integrity key }. */
export function readEspSaTable(): Map<number, { encKey: Buffer; integKey: Buffer }> {
  const out = new Map<number, { encKey: Buffer; integKey: Buffer }>();
  const text = readFileSync(join(GOLDEN_DIR, 'tshark-keys', 'esp_sa'), 'utf8');
  for (const l of text.split('\n')) {
    const f = [...l.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
    if (f.length < 8 || !f[3]?.startsWith('0x')) continue;
    out.set(Number.parseInt(f[3].slice(2), 16), {
      encKey: Buffer.from((f[5] ?? '').slice(2), 'hex'),
      integKey: Buffer.from((f[7] ?? '').slice(2), 'hex'),
    });
  }
  return out;
}
