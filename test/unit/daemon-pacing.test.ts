import { describe, expect, it } from 'vitest';
import { formatConfigError, loadConfig } from '../../src/config/index.js';
import { startPacing } from '../../src/daemon/daemon.js';
import { DEMO_PSK, makeConf } from '../fixtures/config/tmpconf.js';

async function pacingFor(peers: number, startNow: number, jitter = '5s') {
  const files: Record<string, string> = { 'secrets/m.psk': DEMO_PSK };
  for (let i = 0; i < peers; i++)
    files[`peers.d/p${i}.toml`] =
      `address = "10.9.${i >> 8}.${i & 255}"\npsk_file = "secrets/m.psk"\nstart = "${i < startNow ? 'now' : 'trap'}"\n`;
  const t = makeConf(`[startup]\nmax_concurrent_initiations = 8\ninitiation_jitter = "${jitter}"\n`, files);
  const r = await loadConfig(t.main);
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return startPacing(r.config);
}

describe('start-up pacing', () => {
  it('spreads initiations 10 ms per started peer, capped by initiation_jitter', async () => {
    expect(await pacingFor(2, 2)).toEqual({ maxConcurrent: 8, jitterMs: 20 });
    expect(await pacingFor(5, 1)).toEqual({ maxConcurrent: 8, jitterMs: 10 }); // trap peers start on traffic
    expect(await pacingFor(0, 0)).toEqual({ maxConcurrent: 8, jitterMs: 0 });
    expect(await pacingFor(600, 600)).toEqual({ maxConcurrent: 8, jitterMs: 5000 });
    expect(await pacingFor(600, 600, '2s')).toEqual({ maxConcurrent: 8, jitterMs: 2000 });
  });
});
