import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, test } from 'vitest';
import { formatConfigError, loadConfig, Secret } from '../../src/config/index.js';
import { DEMO_PSK, makeConf } from '../fixtures/config/tmpconf.js';

/** The shipped example, with the secret and certificate files it refers to created (mode 600). */
function shippedExample(): string {
  const dir = mkdtempSync(join(tmpdir(), 'coati-example-'));
  cpSync(join(import.meta.dirname, '../../conf'), dir, { recursive: true });
  mkdirSync(join(dir, 'certs'));
  for (const f of ['web2.psk', 'web3.psk', 'legacy-db1.psk', 'web1.key']) {
    writeFileSync(join(dir, 'secrets', f), `${DEMO_PSK}-${f}\n`, { mode: 0o600 });
  }
  for (const f of ['web1.pem', 'example-ca.pem']) writeFileSync(join(dir, 'certs', f), 'public');
  return join(dir, 'coati.conf');
}

describe('shipped example configuration', () => {
  test('loads, with defaults from [defaults] and built-ins applied', async () => {
    const r = await loadConfig(shippedExample());
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    const c = r.config;
    expect([...c.peers.keys()].sort()).toEqual(['gw-fra', 'legacy-db1', 'web2', 'web3']);
    expect(c.daemon).toMatchObject({ port: 500, nattPort: 4500, keylog: null, shutdown: 'keep', socketGroup: 'coati' });
    expect(c.log).toEqual({ default: 'info', format: 'journal', subsystems: { ike: 'info', kernel: 'warn' } });
    expect(c.metrics.prometheusListen).toEqual({ host: '127.0.0.1', port: 9477 });
    expect(c.metrics.graphite).toBeNull();
    expect(c.startup).toEqual({ maxConcurrentInitiations: 16, initiationJitterMs: 5000 });

    const web2 = c.peers.get('web2')!;
    expect(web2).toMatchObject({
      address: '10.0.0.2',
      version: 2,
      auth: 'psk',
      localId: { type: 'ip', value: '10.0.0.1' },
      remoteId: { type: 'ip', value: '10.0.0.2' },
      ikeLifetimeMs: 4 * 3600_000,
      rekeyMarginMs: 9 * 60_000,
      dpdDelayMs: 30_000,
      dpdAction: 'restart',
      start: 'trap',
      natKeepaliveMs: 20_000,
      fragmentation: true,
      retransmitTries: 5,
    });
    expect(web2.children).toEqual([
      expect.objectContaining({
        name: 'web2',
        mode: 'transport',
        localTs: { kind: 'host' },
        remoteTs: { kind: 'host' },
      }),
    ]);
    expect(web2.psk?.reveal().toString()).toBe(`${DEMO_PSK}-web2.psk`); // trailing newline stripped

    expect(c.peers.get('web3')!.remoteId).toEqual({ type: 'fqdn', value: 'web3.mesh.example' });
    const legacy = c.peers.get('legacy-db1')!;
    expect(legacy.version).toBe(1);
    expect(legacy.ikeProposals.map((p) => p.prf.map((t) => t.name))).toEqual([['prfsha256'], ['prfsha1']]);
    expect(legacy.children[0]!.espProposals[0]!.ke[0]!.id).toBe(14);

    const gw = c.peers.get('gw-fra')!;
    expect(gw.auth).toBe('pubkey');
    expect(gw.psk).toBeNull();
    expect(gw.key).toBeInstanceOf(Secret);
    expect(gw.children.map((ch) => [ch.name, ch.mode, ch.remoteTs])).toEqual([
      [
        'fra-apps',
        'tunnel',
        { kind: 'prefixes', prefixes: [{ family: 4, address: '10.20.0.0', length: 16, text: '10.20.0.0/16' }] },
      ],
      [
        'fra-v6',
        'tunnel',
        { kind: 'prefixes', prefixes: [{ family: 6, address: 'fd00:20::', length: 48, text: 'fd00:20::/48' }] },
      ],
    ]);
  });

  test('secrets never print their bytes', async () => {
    const r = await loadConfig(shippedExample());
    if (!r.ok) throw new Error('load failed');
    const web2 = r.config.peers.get('web2')!;
    expect(JSON.stringify(web2)).not.toContain(DEMO_PSK);
    expect(JSON.stringify(web2)).toContain('"psk":"<redacted>"');
    expect(inspect(web2, { depth: 10 })).not.toContain(DEMO_PSK);
    expect(`${web2.psk}`).toBe('<redacted>');
  });
});

describe('defaults', () => {
  test('a minimal peer gets built-in defaults; the file stem names it', async () => {
    const t = makeConf('', {
      'secrets/a.psk': DEMO_PSK,
      'peers.d/db9.toml': 'address = "fd00::9"\npsk_file = "secrets/a.psk"\n',
    });
    const r = await loadConfig(t.main);
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    const p = r.config.peers.get('db9')!;
    expect(p.remoteId).toEqual({ type: 'ip', value: 'fd00::9' });
    expect(p.localId).toBeNull();
    expect(p.ikeProposals[0]!.text).toBe('aes256gcm16-prfsha256-x25519');
    expect(p.children[0]!.espProposals[0]!.esn).toEqual([{ kind: 'esn', id: 0, name: 'noesn' }]);
    expect(r.config.daemon).toMatchObject({
      socket: '/run/coati/coati.sock',
      listen: ['0.0.0.0', '::'],
      shutdown: 'keep',
    });
    expect(r.config.kernel).toEqual({
      backend: 'xfrm',
      reqidMin: 0xc0a70000,
      reqidMax: 0xc0a7ffff,
      policyPriority: 0,
      spdHash: {},
    });
  });

  test('inline psk is accepted when allow_inline_secrets = true', async () => {
    const t = makeConf('[daemon]\nallow_inline_secrets = true\n', {
      'peers.d/x.toml': 'address = "10.9.9.9"\npsk = "inline-demo-secret-xx"\n',
    });
    const r = await loadConfig(t.main);
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    expect(r.config.peers.get('x')!.psk!.source).toBe('inline');
  });

  test('a missing main file is one error naming it', async () => {
    const r = await loadConfig('/nonexistent/coati.conf');
    expect(r.ok ? [] : r.errors.map(formatConfigError)).toEqual([
      '/nonexistent/coati.conf: cannot read: file not found',
    ]);
  });
});
