import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { type Config, diffConfig, formatConfigError, loadConfig } from '../../src/config/index.js';
import { DEMO_PSK, makeConf } from '../fixtures/config/tmpconf.js';

async function load(main: string): Promise<Config> {
  const r = await loadConfig(main);
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.config;
}

test('diffConfig classifies peers and daemon keys', async () => {
  const peer = (addr: string, psk: string) => `address = "${addr}"\npsk_file = "secrets/${psk}"\n`;
  const t = makeConf('[daemon]\nport = 500\n[log]\ndefault = "info"\n', {
    'secrets/a.psk': DEMO_PSK,
    'secrets/b.psk': DEMO_PSK,
    'secrets/c.psk': DEMO_PSK,
    'peers.d/a.toml': peer('10.0.0.1', 'a.psk'),
    'peers.d/b.toml': peer('10.0.0.2', 'b.psk'),
    'peers.d/c.toml': peer('10.0.0.3', 'c.psk'),
    'peers.d/d.toml': peer('10.0.0.4', 'a.psk'),
  });
  const before = await load(t.main);
  const same = diffConfig(before, await load(t.main));
  expect(same).toEqual({
    added: [],
    removed: [],
    changed: [],
    unchanged: ['a', 'b', 'c', 'd'],
    daemonChanged: [],
    liveChanged: [],
  });

  // a: secret content changes only; b: a setting changes; c: removed; e: added; d untouched.
  writeFileSync(join(t.dir, 'secrets/a2.psk'), `${DEMO_PSK}-rotated`, { mode: 0o600 });
  writeFileSync(join(t.dir, 'peers.d/a.toml'), peer('10.0.0.1', 'a2.psk'));
  writeFileSync(join(t.dir, 'peers.d/b.toml'), `${peer('10.0.0.2', 'b.psk')}dpd_delay = "10s"\n`);
  rmSync(join(t.dir, 'peers.d/c.toml'));
  writeFileSync(join(t.dir, 'peers.d/e.toml'), peer('10.0.0.5', 'c.psk'));
  writeFileSync(join(t.dir, 'coati.conf'), '[daemon]\nport = 5500\n[log]\ndefault = "debug"\n');
  const d = diffConfig(before, await load(t.main));
  expect(d).toEqual({
    added: ['e'],
    removed: ['c'],
    changed: ['a', 'b'],
    unchanged: ['d'],
    daemonChanged: ['daemon.port'],
    liveChanged: ['log.default'],
  });
});

test('rewriting a secret file with the same bytes is not a change', async () => {
  const t = makeConf('', {
    'secrets/a.psk': DEMO_PSK,
    'peers.d/a.toml': 'address = "10.0.0.1"\npsk_file = "secrets/a.psk"\n',
  });
  const before = await load(t.main);
  writeFileSync(join(t.dir, 'secrets/a.psk'), `${DEMO_PSK}\n`, { mode: 0o600 });
  expect(diffConfig(before, await load(t.main)).unchanged).toEqual(['a']);
});
