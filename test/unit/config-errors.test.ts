import { describe, expect, test } from 'vitest';
import { formatConfigError, loadConfig } from '../../src/config/index.js';
import { DEMO_PSK, makeConf } from '../fixtures/config/tmpconf.js';

const PSK = { 'secrets/a.psk': DEMO_PSK, 'secrets/b.psk': DEMO_PSK };
const peer = (body: string) => `address = "10.0.0.2"\npsk_file = "secrets/a.psk"\n${body}`;

interface Row {
  name: string;
  main?: string;
  files: Record<string, string>;
  modes?: Record<string, number>;
  /** Expected messages, with FILE standing for the path relative to the temp dir. */
  expect: string[];
}

const rows: Row[] = [
  {
    name: 'TOML syntax error',
    files: { ...PSK, 'peers.d/p.toml': 'address = "10.0.0.2"\ndpd_delay = \n' },
    expect: ['peers.d/p.toml:3:1: TOML syntax error: Unspecified values are invalid'],
  },
  {
    name: 'unknown key with suggestion',
    files: { ...PSK, 'peers.d/p.toml': peer('dpd_dealy = "10s"\n') },
    expect: ['peers.d/p.toml:3:1: key "dpd_dealy": unknown key; did you mean dpd_delay?'],
  },
  {
    name: 'duration given as a number',
    files: { ...PSK, 'peers.d/web7.toml': `${peer('')}\n\ndpd_delay = 10\n` },
    expect: ['peers.d/web7.toml:5:13: key "dpd_delay": expected a duration like "10s", found 10'],
  },
  {
    name: 'bad duration unit',
    files: { ...PSK, 'peers.d/p.toml': peer('ike_lifetime = "4 hours"\n') },
    expect: ['peers.d/p.toml:3:16: key "ike_lifetime": expected a duration like "10s", found "4 hours"'],
  },
  {
    name: 'wrong type',
    files: { ...PSK, 'peers.d/p.toml': peer('version = "2"\n') },
    expect: ['peers.d/p.toml:3:11: key "version": expected an integer from 1 to 2, found "2"'],
  },
  {
    name: 'bad enum',
    files: { ...PSK, 'peers.d/p.toml': peer('dpd_action = "hold"\n') },
    expect: ['peers.d/p.toml:3:14: key "dpd_action": expected "clear" or "trap" or "restart", found "hold"'],
  },
  {
    name: 'bad proposal token',
    files: { ...PSK, 'peers.d/p.toml': peer('ike_proposals = "aes256-sha265-modp2048"\n') },
    expect: [
      'peers.d/p.toml:3:17: key "ike_proposals": expected a valid IKE proposal, found proposal "aes256-sha265-modp2048": unknown algorithm "sha265"',
    ],
  },
  {
    name: 'bad prefix',
    files: { ...PSK, 'peers.d/p.toml': peer('local_ts = ["10.0.0.0/33"]\n') },
    expect: [
      'peers.d/p.toml:3:12: key "local_ts": expected an IP prefix like "10.1.0.0/16" or "fd00::/64", found "10.0.0.0/33"',
    ],
  },
  {
    name: 'world-readable secret',
    files: { ...PSK, 'peers.d/p.toml': peer('') },
    modes: { 'secrets/a.psk': 0o644 },
    expect: [
      'peers.d/p.toml:2:12: key "psk_file": secret file secrets/a.psk has mode 0644 (accessible by group and other); run: chmod 600 secrets/a.psk',
    ],
  },
  {
    name: 'group-writable secret',
    files: { ...PSK, 'peers.d/p.toml': peer('') },
    modes: { 'secrets/a.psk': 0o620 },
    expect: [
      'peers.d/p.toml:2:12: key "psk_file": secret file secrets/a.psk has mode 0620 (accessible by group); run: chmod 600 secrets/a.psk',
    ],
  },
  {
    name: 'missing secret file',
    files: { 'peers.d/p.toml': 'address = "10.0.0.2"\npsk_file = "secrets/nope.psk"\n' },
    expect: ['peers.d/p.toml:2:12: key "psk_file": cannot read secret file secrets/nope.psk: file not found'],
  },
  {
    name: 'duplicate peer name',
    files: {
      ...PSK,
      'peers.d/a.toml': peer('name = "web"\n'),
      'peers.d/b.toml': 'name = "web"\naddress = "10.0.0.3"\npsk_file = "secrets/b.psk"\n',
    },
    expect: ['peers.d/b.toml:1:8: key "name": duplicate peer name "web", also used by peers.d/a.toml'],
  },
  {
    name: 'duplicate peer address',
    files: { ...PSK, 'peers.d/a.toml': peer(''), 'peers.d/b.toml': peer('') },
    expect: [
      'peers.d/b.toml:1:11: key "address": duplicate peer address 10.0.0.2, also used by peer "a" (peers.d/a.toml)',
    ],
  },
  {
    name: 'inline psk refused',
    files: { 'peers.d/p.toml': 'address = "10.0.0.2"\npsk = "hunter2hunter2hunter2"\n' },
    expect: [
      'peers.d/p.toml:2:7: key "psk": inline secrets are refused; put the key in a file (chmod 600) and set psk_file, or set allow_inline_secrets = true in [daemon]',
    ],
  },
  {
    name: 'bad identity',
    files: { ...PSK, 'peers.d/p.toml': peer('remote_id = "host:web7"\n') },
    expect: [
      'peers.d/p.toml:3:13: key "remote_id": expected a valid identity, found unknown identity type in "host:web7"; write "fqdn:host.example", "ip:10.0.0.1", "email:user@example.org", "dn:CN=host,O=org" or "keyid:0a1b..."',
    ],
  },
  {
    name: 'pubkey settings with psk auth',
    files: { ...PSK, 'peers.d/p.toml': peer('cert_file = "certs/x.pem"\n') },
    expect: [
      'peers.d/p.toml:3:13: key "cert_file": does not apply with auth = "psk" (the default); remove it or set auth = "pubkey"',
    ],
  },
  {
    name: 'psk_file with pubkey auth',
    files: {
      ...PSK,
      'certs/c.pem': 'cert',
      'secrets/k.key': 'key',
      'peers.d/p.toml': peer('auth = "pubkey"\ncert_file = "certs/c.pem"\nkey_file = "secrets/k.key"\n'),
    },
    expect: ['peers.d/p.toml:2:12: key "psk_file": does not apply with auth = "pubkey"; remove it or set auth = "psk"'],
  },
  {
    name: 'traffic selector families mismatched',
    files: { ...PSK, 'peers.d/p.toml': peer('mode = "tunnel"\nlocal_ts = "10.1.0.0/16"\nremote_ts = "fd00::/64"\n') },
    expect: [
      'peers.d/p.toml:5:13: key "remote_ts": child "p": local_ts is IPv4 but remote_ts is IPv6; traffic selectors need a common address family',
    ],
  },
  {
    name: 'missing address',
    files: { ...PSK, 'peers.d/p.toml': 'psk_file = "secrets/a.psk"\n' },
    expect: ['peers.d/p.toml: key "address": missing; every peer file needs the remote address (IP or host name)'],
  },
  {
    name: 'pfs without a KE group',
    files: { ...PSK, 'peers.d/p.toml': peer('esp_proposals = "aes128gcm16"\n') },
    expect: [
      'peers.d/p.toml:3:17: key "esp_proposals": pfs = true but ESP proposal "aes128gcm16" has no key exchange group; add one (e.g. "-x25519") or set pfs = false',
    ],
  },
  {
    name: 'aggressive mode in IKEv2',
    files: { ...PSK, 'peers.d/p.toml': peer('aggressive = true\n') },
    expect: [
      'peers.d/p.toml:3:14: key "aggressive": aggressive mode exists only in IKEv1; set version = 1 or remove it',
    ],
  },
  {
    name: 'main file: unknown key in a section, bad port, bad level',
    main: '[daemon]\nprot = 500\nnatt_port = 70000\n[log]\nike = "verbose"\n',
    files: {},
    expect: [
      'coati.conf:2:1: key "daemon.prot": unknown key in [daemon]; did you mean port?',
      'coati.conf:3:13: key "daemon.natt_port": expected an integer from 1 to 65535, found 70000',
      'coati.conf:5:7: key "log.ike": expected a log level ("error" or "warn" or "notice" or "info" or "debug"), found "verbose"',
    ],
  },
  {
    name: 'retransmission and liveness timers that cannot work',
    files: { ...PSK, 'peers.d/p.toml': peer('retransmit_max = "1s"\ndpd_timeout = "100ms"\n') },
    expect: [
      'peers.d/p.toml:4:15: key "dpd_timeout": must be at least 200ms while dpd_delay is on',
      'peers.d/p.toml:3:18: key "retransmit_max": must not be shorter than retransmit_base',
    ],
  },
  {
    name: 'SPD hash thresholds out of range or malformed',
    main: '[kernel]\nspd_hash_v4 = "33/24"\nspd_hash_v6 = "64"\n',
    files: {},
    expect: [
      'coati.conf:2:15: key "kernel.spd_hash_v4": expected "auto" or "local/remote" prefix lengths up to 32 (e.g. "24/24"), found "33/24"',
      'coati.conf:3:15: key "kernel.spd_hash_v6": expected "auto" or "local/remote" prefix lengths up to 128 (e.g. "64/64"), found "64"',
    ],
  },
  {
    name: 'typo inside [[children]] and in [defaults]',
    main: '[defaults]\ndpd_timeot = "60s"\n',
    files: { ...PSK, 'peers.d/p.toml': peer('[[children]]\nname = "c1"\nremote_tss = "10.2.0.0/16"\n') },
    expect: [
      'coati.conf:2:1: key "defaults.dpd_timeot": unknown key in [defaults]; did you mean dpd_timeout?',
      'peers.d/p.toml:5:1: key "children[0].remote_tss": unknown key in [children[0]]; did you mean remote_ts?',
    ],
  },
  {
    name: 'main file: unknown section',
    main: '[deamon]\nport = 500\n',
    files: {},
    expect: ['coati.conf:1:2: key "deamon": unknown section or key at top level; did you mean [daemon]?'],
  },
  {
    name: 'errors are collected across files',
    files: {
      ...PSK,
      'peers.d/a.toml': peer('start = "later"\n'),
      'peers.d/b.toml': 'address = "10.0.0.3"\npsk_file = "secrets/b.psk"\nmode = 1\n',
    },
    expect: [
      'peers.d/a.toml:3:9: key "start": expected "none" or "now" or "trap", found "later"',
      'peers.d/b.toml:3:8: key "mode": expected "tunnel" or "transport", found 1',
    ],
  },
];

describe('loadConfig error table', () => {
  test.each(rows)('$name', async (row) => {
    const t = makeConf(row.main ?? '', row.files, row.modes);
    const r = await loadConfig(t.main);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const got = r.errors.map(formatConfigError).map((m) => m.replaceAll(`${t.dir}/`, '').replaceAll(t.dir, 'DIR'));
    expect(got).toEqual(row.expect);
  });

  test('a secret owned by another user is refused', async () => {
    const t = makeConf('', { ...PSK, 'peers.d/p.toml': peer('') });
    const r = await loadConfig(t.main, { uid: 4242 });
    // Files created by the test runner belong to its uid; the daemon's uid is pretended to be 4242.
    const runner = process.getuid?.() ?? 0;
    if (runner === 0) {
      expect(r.ok).toBe(true); // root-owned files are always accepted
      return;
    }
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(formatConfigError(r.errors[0]!)).toContain(`is owned by uid ${runner}, not root or the daemon's uid 4242`);
  });
});
