/** Typed IKE identities as written in config: `fqdn:host.example`, `ip:10.0.0.1`, ... */
import { isIP } from 'node:net';
import { isHostname } from './values.js';

export type Identity =
  | { type: 'fqdn'; value: string }
  | { type: 'ip'; value: string }
  | { type: 'email'; value: string }
  | { type: 'dn'; value: string }
  | { type: 'keyid'; value: string /* lowercase hex */ };

export type IdentityResult = { ok: true; id: Identity } | { ok: false; message: string };

const FORMS = '"fqdn:host.example", "ip:10.0.0.1", "email:user@example.org", "dn:CN=host,O=org" or "keyid:0a1b..."';

export function parseIdentity(text: string): IdentityResult {
  const colon = text.indexOf(':');
  const type = colon < 0 ? '' : text.slice(0, colon);
  const value = colon < 0 ? '' : text.slice(colon + 1);
  const fail = (why: string): IdentityResult => ({ ok: false, message: `${why}; write ${FORMS}` });
  switch (type) {
    case 'fqdn':
      return isHostname(value) ? { ok: true, id: { type, value } } : fail(`"${value}" is not a valid host name`);
    case 'ip':
      return isIP(value) !== 0 ? { ok: true, id: { type, value } } : fail(`"${value}" is not an IP address`);
    case 'email':
      return /^[^@\s]+@[^@\s]+$/.test(value)
        ? { ok: true, id: { type, value } }
        : fail(`"${value}" is not an e-mail address`);
    case 'dn':
      return /^[A-Za-z][\w.-]*=/.test(value)
        ? { ok: true, id: { type, value } }
        : fail(`"${value}" is not a distinguished name`);
    case 'keyid':
      return /^([0-9a-fA-F]{2})+$/.test(value)
        ? { ok: true, id: { type, value: value.toLowerCase() } }
        : fail(`"${value}" is not an even number of hex digits`);
    default:
      return fail(`unknown identity type in "${text}"`);
  }
}

/** The default identity for an address or host name. */
export function identityForAddress(addr: string): Identity {
  return isIP(addr) !== 0 ? { type: 'ip', value: addr } : { type: 'fqdn', value: addr.replace(/\.$/, '') };
}

export function formatIdentity(id: Identity): string {
  return `${id.type}:${id.value}`;
}
