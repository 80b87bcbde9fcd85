/**
 * Certification path building and validation for IKE peers: from the end
 * entity certificate through the intermediates the peer sent (or we hold) to
 * one of the configured trust anchors. Issuers are found by byte-equal Name
 * DER; each link's signature is verified by OpenSSL; validity is checked
 * against an injected clock. Failures are values with a stable code and a
 * message that names the certificate and what was wrong.
 *
 * Not covered here: revocation (CRL/OCSP), name constraints and policies (a
 * certificate marking those critical is refused as unsupported).
 */
import type { CertificateInfo } from './certs.js';

export type ChainFailureCode =
  | 'CERT_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_UNTRUSTED'
  | 'CERT_BAD_SIGNATURE'
  | 'CERT_NOT_CA'
  | 'CERT_CHAIN_TOO_LONG';

export type ChainResult =
  | { ok: true; chain: CertificateInfo[] }
  | { ok: false; code: ChainFailureCode; message: string };

export interface ValidateChainOptions {
  leaf: CertificateInfo;
  intermediates: readonly CertificateInfo[];
  trustAnchors: readonly CertificateInfo[];
  /** Milliseconds since the epoch. */
  now: number;
  /** Most certificates in a path, leaf and anchor included. */
  maxDepth?: number;
}

export const DEFAULT_MAX_CHAIN_DEPTH = 8;

type Failure = { ok: false; code: ChainFailureCode; message: string };
interface Ranked {
  failure: Failure;
  depth: number;
}

const fail = (code: ChainFailureCode, message: string): Failure => ({ ok: false, code, message });
const iso = (ms: number) => new Date(ms).toISOString();
const q = (c: CertificateInfo) => `"${c.subjectText}"`;

function timeProblem(c: CertificateInfo, now: number, role: string): Failure | undefined {
  if (now < c.notBefore) {
    return fail('CERT_NOT_YET_VALID', `${role} ${q(c)} is not valid before ${iso(c.notBefore)} (now ${iso(now)})`);
  }
  if (now > c.notAfter) {
    return fail('CERT_EXPIRED', `${role} ${q(c)} expired at ${iso(c.notAfter)} (now ${iso(now)})`);
  }
  return undefined;
}

function criticalProblem(c: CertificateInfo, role: string): Failure | undefined {
  if (c.unknownCritical.length === 0) return undefined;
  return fail(
    'CERT_UNTRUSTED',
    `${role} ${q(c)} has unsupported critical extension(s) ${c.unknownCritical.join(', ')}`,
  );
}

/** Checks a candidate issuer before its signature on `path`'s last certificate is verified. */
function issuerProblem(
  cand: CertificateInfo,
  path: CertificateInfo[],
  anchor: boolean,
  now: number,
): Failure | undefined {
  const role = anchor ? 'trust anchor' : 'intermediate CA';
  // a self-signed v1 certificate cannot say it is a CA; as a configured trust anchor it is taken as one
  const v1Root = anchor && cand.version === 1 && cand.selfIssued;
  if (!cand.isCa && !v1Root) {
    return fail('CERT_NOT_CA', `${role} ${q(cand)} issued ${q(path.at(-1)!)} but is not a CA (basicConstraints cA)`);
  }
  if (cand.keyUsage && !cand.keyUsage.keyCertSign) {
    return fail('CERT_NOT_CA', `${role} ${q(cand)} has keyUsage without keyCertSign`);
  }
  if (cand.pathLen !== undefined) {
    // intermediates below this issuer, not counting self-issued ones (RFC 5280 6.1.4 (l))
    const below = path.slice(1).filter((c) => !c.selfIssued).length;
    if (below > cand.pathLen) {
      return fail(
        'CERT_CHAIN_TOO_LONG',
        `${role} ${q(cand)} allows ${cand.pathLen} intermediate CA(s) below it (pathLenConstraint), the path has ${below}`,
      );
    }
  }
  return timeProblem(cand, now, role) ?? criticalProblem(cand, role);
}

function signedBy(cert: CertificateInfo, issuer: CertificateInfo): boolean {
  try {
    return cert.x509.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Builds and validates a path from `leaf` to one of `trustAnchors`; the chain runs leaf first, anchor last. */
export function validateChain(opts: ValidateChainOptions): ChainResult {
  const { leaf, now } = opts;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_CHAIN_DEPTH;
  const early = timeProblem(leaf, now, 'certificate') ?? criticalProblem(leaf, 'certificate');
  if (early) return early;
  // a certificate configured as a trust anchor is trusted as itself (pinned)
  if (opts.trustAnchors.some((a) => a.der.equals(leaf.der))) return { ok: true, chain: [leaf] };

  let best: Ranked | undefined;
  const note = (failure: Failure, depth: number) => {
    if (!best || depth > best.depth) best = { failure, depth };
  };

  const extend = (path: CertificateInfo[]): CertificateInfo[] | undefined => {
    const cur = path.at(-1)!;
    const anchors = opts.trustAnchors.filter((a) => a.subjectDer.equals(cur.issuerDer));
    const inters = opts.intermediates.filter(
      (c) => c.subjectDer.equals(cur.issuerDer) && !path.some((p) => p.der.equals(c.der)),
    );
    if (anchors.length === 0 && inters.length === 0) {
      note(
        fail('CERT_UNTRUSTED', `no trust anchor or intermediate named "${cur.issuerText}" to vouch for ${q(cur)}`),
        path.length,
      );
      return undefined;
    }
    const candidates = [...anchors.map((c) => ({ c, anchor: true })), ...inters.map((c) => ({ c, anchor: false }))];
    for (const { c, anchor } of candidates) {
      const role = anchor ? 'trust anchor' : 'intermediate CA';
      if (path.length + 1 > maxDepth) {
        note(
          fail('CERT_CHAIN_TOO_LONG', `path from ${q(leaf)} needs more than ${maxDepth} certificates (at ${q(c)})`),
          path.length + 1,
        );
        continue;
      }
      const problem = issuerProblem(c, path, anchor, now);
      if (problem) {
        note(problem, path.length + 1);
        continue;
      }
      if (!signedBy(cur, c)) {
        note(
          fail('CERT_BAD_SIGNATURE', `signature on ${q(cur)} does not verify with the key of ${role} ${q(c)}`),
          path.length + 1,
        );
        continue;
      }
      if (anchor) return [...path, c];
      const done = extend([...path, c]);
      if (done) return done;
    }
    return undefined;
  };

  const chain = extend([leaf]);
  if (chain) return { ok: true, chain };
  return best?.failure ?? fail('CERT_UNTRUSTED', `no path from ${q(leaf)} to a trust anchor`);
}
