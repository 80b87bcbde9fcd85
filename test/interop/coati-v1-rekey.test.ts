/**
 * Interop: coati (responder) ↔ strongSwan charon, IKEv1 PSK under short lifetimes set on
 * charon's side: charon re-keys the Quick Mode SA (rekey_time 3 s) and re-authenticates
 * phase 1 (reauth_time 6 s). After each, charon's installed CHILD_SA SPIs and ISAKMP
 * initiator cookie are ones coati keyed (its key log), i.e. coati answered every new
 * Quick Mode and Main Mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Charon } from '../harness/charon.js';
import { type Lab, type Netns, waitFor } from '../harness/netns.js';
import { CHARON, COATI, charonConn, charonPair, coatiPeer } from '../helpers/charon-pair.js';
import { Coati, keylogDisagreements } from '../helpers/coati-proc.js';

const PSK = 'coati-v1-interop-rekey-NOT-A-SECRET';

describe('interop coati ↔ charon: IKEv1 rekeys', () => {
  let lab: Lab;
  let a: Netns;
  let charon: Charon;
  beforeAll(async () => {
    ({ lab, a, charon } = await charonPair('coati-v1-rekey', { logLevels: { ike: 2, cfg: 1 } }));
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('charon re-keys Quick Mode and re-authenticates phase 1; coati answers each, keys agree', async () => {
    const suite = { version: 1, ike: 'aes128-sha256-modp2048', esp: 'aes128-sha256-modp2048', psk: PSK } as const;
    await charon.loadConns([
      charonConn({ ...suite, reauthTime: '8s', overTime: '4s', child: { rekeyTime: '3s', lifeTime: '6s' } }),
    ]);
    const coati = await Coati.start(a, 'rekey', {
      version: 1,
      listen: [COATI],
      peers: [coatiPeer({ ...suite, pfs: true })],
    });
    const context = () => `${coati.logTail(40)}\n${charon.logTail(80)}`;
    await charon.initiate('net', 'coati');
    const first = await charon.waitChild('coati', 'net');
    expect(keylogDisagreements(coati, first.ike, COATI, CHARON), context()).toEqual([]);

    // Quick Mode rekey: a CHILD_SA with new SPIs, keyed by coati.
    const rekeyed = await waitFor(
      'charon to re-key the CHILD_SA',
      async () => {
        const s = await charon.waitChild('coati', 'net').catch(() => undefined);
        return s && s.child.spiIn !== first.child.spiIn ? s : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200, context },
    );
    expect(keylogDisagreements(coati, rekeyed.ike, COATI, CHARON), context()).toEqual([]);

    // Phase 1 re-authentication: a new ISAKMP SA (new cookies) keyed by coati, with a CHILD_SA.
    const reauthed = await waitFor(
      'charon to re-authenticate phase 1',
      async () => {
        // Any established ISAKMP SA with new cookies and an installed CHILD_SA: charon can list
        // the old SA first while it re-authenticates (every few seconds with these lifetimes).
        for (const ike of await charon.listSas()) {
          if (ike.conn !== 'coati' || ike.state !== 'ESTABLISHED' || ike.initiatorSpi === first.ike.initiatorSpi)
            continue;
          const child = ike.children.find((c) => c.name === 'net' && c.state === 'INSTALLED');
          if (child) return { ike, child };
        }
        return undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200, context },
    );
    expect(keylogDisagreements(coati, reauthed.ike, COATI, CHARON), context()).toEqual([]);
    expect(coati.cookies().length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
