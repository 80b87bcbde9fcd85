/**
 * `coatictl import racoon`: a racoon.conf of a mesh host (test/fixtures/racoon: many
 * `remote` blocks, an anonymous sainfo, DPD, NAT-T, an inherited remote, a tunnel to an
 * office gateway, unsupported statements) with its setkey.conf and psk.txt becomes coati
 * IKEv1 peer files that coati's own loader accepts; every unsupported statement is
 * reported with its file:line and the exact message; PSKs are copied with mode 0600 only
 * when asked.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { formatConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/index.js';
import { main } from '../../src/control/cli/coatictl.js';
import {
  convertRacoon,
  formatImportMessage,
  parseRacoonConf,
  RacoonSyntaxError,
} from '../../src/control/cli/import-racoon.js';

const FIX = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'racoon');
const fixture = (f: string) => readFileSync(join(FIX, f), 'utf8');

function cli(argv: string[]) {
  let out = '';
  let err = '';
  const io = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: {},
  };
  return main(argv, io).then((code) => ({ code, out, err }));
}

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'coati-import-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('convertRacoon on the mesh fixture', () => {
  const r = convertRacoon({
    racoonConf: fixture('racoon.conf'),
    setkey: fixture('setkey.conf'),
    pskText: fixture('psk.txt'),
  });
  const peer = (name: string) => {
    const p = r.peers.find((x) => x.name === name);
    if (!p) throw new Error(`no peer ${name} in ${r.peers.map((x) => x.name)}`);
    return p;
  };

  it('writes one IKEv1 peer per remote with an address (not the anonymous one)', () => {
    expect(r.peers.map((p) => p.fileName)).toEqual([
      '198.51.100.11.toml',
      '198.51.100.12.toml',
      'agg4.mesh.example.net.toml',
      '198.51.100.15.toml',
      '203.0.113.50.toml',
    ]);
    for (const p of r.peers) expect(p.toml).toMatch(/^version = 1$/m);
  });

  it('maps proposals, lifetimes, identities, DPD, NAT-T keepalive, timers and the anonymous sainfo', () => {
    const t = peer('198.51.100.11').toml;
    for (const line of [
      'address = "198.51.100.11"',
      'ike_proposals = ["aes128-sha256-modp2048"]',
      'ike_lifetime = "28800s"',
      'local_id = "ip:198.51.100.13"',
      'remote_id = "ip:198.51.100.11"',
      'aggressive = false',
      'dpd_delay = "20s"',
      // racoon declares the peer dead after dpd_retry × dpd_maxfail = 5 s × 6
      'dpd_timeout = "30s"',
      'nat_keepalive = "15s"',
      'retransmit_tries = 5',
      'retransmit_base = "2s"',
      'esp_proposals = ["aes128-sha256-modp2048"]',
      'pfs = true',
      'child_lifetime = "3600s"',
      'mode = "transport"',
      'auth = "psk"',
      'psk_file = "secrets/198.51.100.11.psk"',
    ])
      expect(t.split('\n')).toContain(line);
    // Every mapped statement is named with its line.
    expect(t).toContain('#   racoon.conf:39: dpd_delay 20  ->  dpd_delay');
    expect(t).toContain('#   racoon.conf:38: nat_traversal on  ->  NAT-T (RFC 3947, always on)');
    expect(t).toContain('#   psk.txt:2: key for 198.51.100.11  ->  secrets/198.51.100.11.psk');
    expect(peer('198.51.100.11').psk?.toString()).toBe('mesh-psk-agg1-0123456789abcdef');
  });

  it('keeps only the usable proposal, takes the shorter lifetime, passive = start none, fqdn ids and hex keys', () => {
    expect(peer('198.51.100.12').toml).toContain('ike_proposals = ["aes256-sha1-modp2048"]\n');
    const agg4 = peer('agg4.mesh.example.net');
    expect(agg4.toml).toContain('ike_lifetime = "14400s"\n');
    expect(agg4.toml).toContain('start = "none"\n');
    expect(agg4.toml).toContain('remote_id = "fqdn:agg4.mesh.example.net"\n');
    expect(agg4.toml).toContain('local_id = "fqdn:agg3.mesh.example.net"\n');
    expect(agg4.psk?.toString()).toBe('mesh-psk-agg4-012345');
  });

  it('resolves `inherit`: the parent statements, overridden by the child', () => {
    const t = peer('198.51.100.15').toml;
    expect(t).toContain('remote_id = "ip:198.51.100.15"\n');
    expect(t).toContain('ike_proposals = ["aes128-sha256-modp2048"]\n');
    expect(t).toContain('dpd_timeout = "30s"\n');
    expect(t).not.toContain('racoon.conf:38: nat_traversal on');
  });

  it('turns the tunnel policy and its sainfo into a tunnel child with every ESP combination', () => {
    const t = peer('203.0.113.50').toml;
    expect(t).toContain('esp_proposals = ["aes256-sha1-modp2048", "aes256-sha256-modp2048"]\n');
    expect(t).toContain('child_lifetime = "1800s"\n');
    expect(t).toContain('local_address = "198.51.100.13"\n');
    expect(t).toContain(
      '[[children]]\nname = "203.0.113.50-1"\nmode = "tunnel"\nlocal_ts = ["10.13.0.0/24"]\nremote_ts = ["10.50.0.0/24"]\n',
    );
  });

  it('reports every unsupported statement, line by line, with the exact message', () => {
    expect(r.messages.map(formatImportMessage)).toEqual([
      'racoon.conf:5: `path include /etc/racoon` is not supported: only `path pre_shared_key` and `path certificate` are read',
      'racoon.conf:9: `log notify` is not supported: set log levels in [log] of coati.conf',
      'racoon.conf:12: `isakmp 198.51.100.13 [500]` is not supported: listen addresses are daemon-wide in coati: set `listen` in [daemon] of coati.conf',
      'racoon.conf:13: `isakmp_natt 198.51.100.13 [4500]` is not supported: listen addresses are daemon-wide in coati: set `listen` in [daemon] of coati.conf',
      "racoon.conf:14: `adminsock /var/racoon/racoon.sock root operator 0660` is not supported: coatictl talks to coatid's own admin socket: set `socket` (and `socket_group`) in [daemon] of coati.conf",
      'racoon.conf:20: `persend 1` is not supported: coati sends each message once per retransmission',
      'racoon.conf:21: `phase1 30 sec` is not supported: coati gives up after retransmit_tries with its backoff; there is no separate phase timeout',
      'racoon.conf:22: `phase2 15 sec` is not supported: coati gives up after retransmit_tries with its backoff; there is no separate phase timeout',
      'racoon.conf:27: `maximum_length 20` is not supported: coati pads per RFC 2409 and always checks padding',
      'racoon.conf:28: `randomize off` is not supported: coati pads per RFC 2409 and always checks padding',
      'racoon.conf:29: `strict_check off` is not supported: coati pads per RFC 2409 and always checks padding',
      'racoon.conf:30: `exclusive_tail off` is not supported: coati pads per RFC 2409 and always checks padding',
      'racoon.conf:54: `exchange_mode main aggressive`: only "main" is imported; coati does not fall back to aggressive',
      "racoon.conf:59: `generate_policy on` is not supported: coati installs policies from each peer's traffic selectors and never takes them from the initiator's proposal; write local_ts/remote_ts",
      'racoon.conf:68: `encryption_algorithm 3des` is not supported: coati does IKEv1 phase 1 with AES-CBC only',
      'racoon.conf:69: `hash_algorithm md5` is not supported: coati does IKEv1 phase 1 with SHA-1 and SHA-2 only',
      'racoon.conf:71: `dh_group 2` is not supported: coati does not implement DH group 2; use 14 (modp2048) or stronger',
      'racoon.conf:94: `nat_traversal force` is not supported: coati encapsulates ESP in UDP only when NAT-D shows a NAT; it cannot force it',
      'racoon.conf:112: `remote anonymous` is not supported: coati needs one peer file per remote address; write a peer for each host this block served',
      'racoon.conf:129: `compression_algorithm deflate` is not supported: IPComp is not implemented; coati negotiates ESP without compression',
      'racoon.conf:138: `compression_algorithm deflate` is not supported: IPComp is not implemented; coati negotiates ESP without compression',
      'setkey.conf:2: `flush` is not needed: coati installs and removes only its own SAs and policies',
      'setkey.conf:3: `spdflush` is not needed: coati installs and removes only its own SAs and policies',
      'setkey.conf:10: level "use" becomes "require": coati never sends the traffic of its policies in the clear',
      'setkey.conf:22: `spdadd 198.51.100.13 198.51.100.99[161] udp -P out none` is not supported: coati manages only IPsec policies of its peers; keep bypass/discard rules in nftables',
      'setkey.conf:23: `spdadd 198.51.100.13 198.51.100.98 any -P out ipsec ah/transport//require` is not supported: only ESP is; AH cannot be imported',
      'setkey.conf:24: `add 198.51.100.13 198.51.100.97 esp 0x1000 -E aes-cbc 0x00112233445566778899aabbccddeeff` is not supported: coati keys every SA through IKE; manual SAs (add/delete) and other setkey commands are not imported',
    ]);
  });
});

describe('single statements', () => {
  const one = (remoteBody: string, extra = '') =>
    convertRacoon({
      racoonConf: `remote 192.0.2.1 {\n${remoteBody}\n proposal { encryption_algorithm aes; hash_algorithm sha256; authentication_method pre_shared_key; dh_group 14; }\n}\n${extra}`,
      pskText: '192.0.2.1 short\n',
    });
  it.each([
    [
      'generate_policy on;',
      "racoon.conf:2: `generate_policy on` is not supported: coati installs policies from each peer's traffic selectors and never takes them from the initiator's proposal; write local_ts/remote_ts",
    ],
    [
      'nat_traversal off;',
      'racoon.conf:2: `nat_traversal off` is not supported: coati always offers NAT-T (RFC 3947); it cannot be switched off',
    ],
    [
      'exchange_mode base;',
      'racoon.conf:2: `exchange_mode base` is not supported: coati does Main and Aggressive Mode only',
    ],
    ['lifetime byte 5 MB;', 'racoon.conf:2: `lifetime byte 5 MB` is not supported: coati has no byte lifetimes'],
    [
      'my_identifier keyid "/etc/id";',
      'racoon.conf:2: `my_identifier keyid /etc/id` is not supported: this identifier keyid identifiers read from a file are not supported; write the key ID in hex as remote_id = "keyid:..."',
    ],
    [
      'proposal_check strict;',
      'racoon.conf:2: `proposal_check strict` is not supported: coati accepts what matches its proposals and takes the shorter lifetime (like "obey")',
    ],
    ['mode_cfg on;', 'racoon.conf:2: `mode_cfg on` is not supported: no coati equivalent'],
    [
      'script "/etc/racoon/up.sh" phase1_up;',
      'racoon.conf:2: `script /etc/racoon/up.sh phase1_up` is not supported: no coati equivalent',
    ],
  ])('%s', (stmt, message) => {
    const r = one(stmt);
    expect(r.messages.map(formatImportMessage)).toContain(message);
  });

  it('warns about keys coati would refuse (shorter than 16 bytes)', () => {
    expect(one('').messages.map(formatImportMessage)).toContain(
      'psk.txt:1: the key for 192.0.2.1 is 5 bytes; coati refuses pre-shared keys shorter than 16 bytes',
    );
  });

  it('sainfo with ports, and a specific sainfo that matches no remote, are reported', () => {
    const r = one(
      '',
      'sainfo address 10.0.0.0/8 [80] tcp address 10.1.0.0/16 any { }\nsainfo address 10.9.0.0/16 any address 10.8.0.0/16 any { encryption_algorithm aes; authentication_algorithm hmac_sha1; }\n',
    );
    expect(r.messages.map(formatImportMessage)).toEqual(
      expect.arrayContaining([
        'racoon.conf:5: `sainfo address 10.0.0.0/8 [80] tcp address 10.1.0.0/16 any` is not supported: coati reads `sainfo anonymous` and `sainfo address A any address B any` (selectors with ports or protocols cannot be imported)',
        'racoon.conf:6: `sainfo address 10.9.0.0/16 any address 10.8.0.0/16 any` applies to no imported remote and was not imported',
      ]),
    );
  });

  it('rsasig with certificate_type/ca_type becomes auth = "pubkey" with paths under `path certificate`', () => {
    const r = convertRacoon({
      racoonConf: `path certificate "/etc/racoon/certs";
remote 192.0.2.1 {
  certificate_type x509 "host.crt" "host.key";
  ca_type x509 "/etc/ssl/ca.pem";
  my_identifier asn1dn;
  proposal { encryption_algorithm aes 256; hash_algorithm sha256; authentication_method rsasig; dh_group 19; }
}`,
    });
    const t = r.peers[0]?.toml ?? '';
    expect(t).toContain('auth = "pubkey"\n');
    expect(t).toContain('cert_file = "/etc/racoon/certs/host.crt"\nkey_file = "/etc/racoon/certs/host.key"\n');
    expect(t).toContain('ca_files = ["/etc/ssl/ca.pem"]\n');
    expect(t).toContain('ike_proposals = ["aes256-sha256-ecp256"]\n');
    expect(t).not.toContain('psk_file');
    expect(r.messages.map(formatImportMessage)).toContain(
      'racoon.conf:5: `my_identifier asn1dn` is not supported: this identifier without a DN takes it from the certificate, which coati does not do; write the DN',
    );
  });

  it('syntax errors name the file and line', () => {
    expect(() => parseRacoonConf('remote 1.2.3.4 {\n  dpd_delay 5;\n', 'x.conf')).toThrow(RacoonSyntaxError);
    expect(() => parseRacoonConf('remote 1.2.3.4 {\n  dpd_delay 5\n}\n', 'x.conf')).toThrow(
      'x.conf:3: unexpected "}" in statement "dpd_delay 5"',
    );
    expect(() => parseRacoonConf('log "debug;\n', 'x.conf')).toThrow('x.conf:1: unterminated string');
  });
});

describe('coatictl import racoon', () => {
  it('writes the peer files and 0600 secrets; coati loadConfig accepts them without errors', async () => {
    const d = tmp();
    const conf = join(d, 'racoon.conf');
    writeFileSync(conf, fixture('racoon.conf'));
    writeFileSync(join(d, 'psk.txt'), fixture('psk.txt'));
    writeFileSync(join(d, 'setkey.conf'), fixture('setkey.conf'));
    const out = join(d, 'coati', 'peers.d');
    const secrets = join(d, 'coati', 'secrets');
    const r = await cli([
      'import',
      'racoon',
      conf,
      '--setkey',
      join(d, 'setkey.conf'),
      '--out',
      out,
      '--secrets-dir',
      secrets,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain('racoon.conf:59: `generate_policy on` is not supported');
    expect(r.err).toMatch(/5 peer file\(s\) written to .*, 27 message\(s\), 5 key\(s\) copied to /);
    expect(readdirSync(out).sort()).toEqual([
      '198.51.100.11.toml',
      '198.51.100.12.toml',
      '198.51.100.15.toml',
      '203.0.113.50.toml',
      'agg4.mesh.example.net.toml',
    ]);
    for (const f of readdirSync(secrets)) expect(statSync(join(secrets, f)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(secrets, 'agg4.mesh.example.net.psk'), 'utf8')).toBe('mesh-psk-agg4-012345');

    // The files load as they are, with coati's own loader.
    writeFileSync(
      join(d, 'coati', 'coati.conf'),
      `[daemon]\nlisten = ["198.51.100.13"]\npeers_dir = "peers.d"\n[kernel]\nbackend = "memory"\n`,
    );
    const loaded = await loadConfig(join(d, 'coati', 'coati.conf'));
    expect(loaded.ok ? [] : loaded.errors.map(formatConfigError)).toEqual([]);
    if (!loaded.ok) return;
    const peers = loaded.config.peers;
    expect([...peers.keys()].sort()).toHaveLength(5);
    const gw = peers.get('203.0.113.50');
    expect(gw?.version).toBe(1);
    expect(gw?.children.map((c) => c.mode)).toEqual(['tunnel']);
    expect(gw?.psk?.length ?? 0).toBeGreaterThanOrEqual(16);
    const a = peers.get('198.51.100.11');
    expect(a?.dpdDelayMs).toBe(20_000);
    expect(a?.dpdTimeoutMs).toBe(30_000);
    expect(a?.ikeLifetimeMs).toBe(8 * 3_600_000);
    expect(a?.pfs).toBe(true);
    expect(a?.ikeProposals.map((p) => p.text)).toEqual(['aes128-sha256-modp2048']);
  });

  it('prints the files without --out, and writes no secrets without --secrets-dir', async () => {
    const d = tmp();
    writeFileSync(join(d, 'racoon.conf'), fixture('racoon.conf'));
    writeFileSync(join(d, 'psk.txt'), fixture('psk.txt'));
    const r = await cli(['import', 'racoon', join(d, 'racoon.conf')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('# ---- 198.51.100.11.toml\n');
    expect(r.out).toContain('psk_file = "secrets/198.51.100.11.psk"');
    expect(r.out).not.toContain('mesh-psk-agg1');
    expect(readdirSync(d).sort()).toEqual(['psk.txt', 'racoon.conf']);
  });

  it.each([
    [['import'], 2, 'expected "racoon", got nothing'],
    [['import', 'openswan', 'x'], 2, 'expected "racoon", got "openswan"'],
    [['import', 'racoon'], 2, 'missing <racoon.conf>'],
    [['import', 'racoon', 'a', 'b'], 2, 'unexpected argument "b"'],
    [['import', 'racoon', 'a', '--bogus'], 2, "Unknown option '--bogus'"],
    [['import', 'racoon', '/nonexistent/racoon.conf'], 1, 'ENOENT'],
  ])('%j exits %i', async (argv, code, msg) => {
    const r = await cli(argv);
    expect(r.code).toBe(code);
    expect(r.err).toContain(msg);
  });

  it('a syntax error in racoon.conf exits 1 with file:line', async () => {
    const d = tmp();
    writeFileSync(join(d, 'racoon.conf'), 'remote 192.0.2.1 {\n  dpd_delay 5;\n');
    const r = await cli(['import', 'racoon', join(d, 'racoon.conf')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('racoon.conf:2: missing "}" at end of file');
  });
});
