/** Public surface of trust/: the cluster's root CA, node certificates, join tokens and their files. */
export { createCa, type CaMaterial, type CreateCaOptions } from './ca.js';
export { createKey, createCsr, signNodeCert, certInfo, verifyCert, identityName, parseIdentity, type Identity, type SignNodeCertOptions, type CertInfo } from './certs.js';
export { renewAt, needsRenewal, renewalTime } from './renewal.js';
export { caDigest, caMatchesDigest, newSecret, formatToken, parseToken, hashSecret, secretMatches, type JoinToken } from './tokens.js';
export { saveTrust, loadTrust, removeTrust, trustPaths, writeAtomic, type TrustMaterial, type TrustPaths } from './files.js';
export { UntrustedCertError, CertExpiredError, CertNotYetValidError, TrustFileError } from './errors.js';
export { DEFAULTS as TRUST_DEFAULTS, TOKEN_PREFIX, TOKEN_VERSION, CA_COMMON_NAME } from './constants.js';
export { seal, unseal } from './seal.js';
