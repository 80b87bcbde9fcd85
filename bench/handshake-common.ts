/** Shared between bench/handshake.ts and its peer processes. */

/**
 * Protected host of SA i in a /16 (`10.1` -> `10.1.0.7/32`): each SA has its own
 * tunnel selectors, as a mesh of distinct peers would (charon also refuses to
 * install a second policy with the same selectors through kernel-libipsec).
 */
export const tsHost = (net: string, i: number) => `${net}.${i >> 8}.${i & 255}/32`;
