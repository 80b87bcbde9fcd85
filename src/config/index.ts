export { type ConfigDiff, diffConfig } from './diff.js';
export { type ConfigError, formatConfigError } from './errors.js';
export { formatIdentity, type Identity, parseIdentity } from './identity.js';
export { type LoadOptions, loadConfig } from './loader.js';
export { type Proposal, parseProposal, parseProposals, type Transform } from './proposal.js';
export { isSecret, SECRET_BRAND, Secret } from './secret.js';
export type * from './types.js';
export { type HostPort, type Prefix, parseDuration, parsePrefix } from './values.js';
