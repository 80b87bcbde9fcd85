/**
 * Well-known IKEv1 vendor IDs as lowercase hex. Most are MD5 digests of a
 * text label; DPD (RFC 3706) is a fixed value whose last two octets carry
 * the major/minor version.
 */
export const V1VendorId = {
  /** MD5("RFC 3947"). */
  NAT_T_RFC3947: '4a131c81070358455c5728f20e95452f',
  /** MD5("draft-ietf-ipsec-nat-t-ike-00"). */
  NAT_T_DRAFT_00: '4485152d18b6bbcd0be8a8469579ddcc',
  /** MD5("draft-ietf-ipsec-nat-t-ike-01"). */
  NAT_T_DRAFT_01: '16f6ca16e4a4066d83821a0f0aeaa862',
  /** MD5("draft-ietf-ipsec-nat-t-ike-02"). */
  NAT_T_DRAFT_02: 'cd60464335df21f87cfdb2fc68b6a448',
  /** MD5("draft-ietf-ipsec-nat-t-ike-02\n"), sent by many implementations. */
  NAT_T_DRAFT_02_N: '90cb80913ebb696e086381b5ec427b1f',
  /** MD5("draft-ietf-ipsec-nat-t-ike-03"). */
  NAT_T_DRAFT_03: '7d9419a65310ca6f2c179d9215529d56',
  /** RFC 3706 Dead Peer Detection, version 1.0. */
  DPD: 'afcad71368a1f1c96b8696fc77570100',
  /** MD5("strongSwan"). */
  STRONGSWAN: '882fe56d6fd20dbc2251613b2ebe5beb',
  /** MD5("FRAGMENTATION"); peers append 4 capability octets (e.g. 80000000). */
  FRAGMENTATION: '4048b7d56ebce88525e7de7f00d6c2d3',
  /** XAUTH (draft-beaulieu-ike-xauth). */
  XAUTH: '09002689dfd6b712',
} as const;

export type V1VendorIdName = keyof typeof V1VendorId;

/**
 * Name of a known vendor ID, or undefined. FRAGMENTATION matches by prefix
 * because implementations append capability flags.
 */
export function vendorIdName(data: Uint8Array): V1VendorIdName | undefined {
  const hex = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
  for (const [k, v] of Object.entries(V1VendorId) as [V1VendorIdName, string][]) {
    if (hex === v) return k;
  }
  if (hex.length === 40 && hex.startsWith(V1VendorId.FRAGMENTATION)) return 'FRAGMENTATION';
  return undefined;
}
