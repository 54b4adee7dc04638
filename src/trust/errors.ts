/**
 * Trust failures, one class per failure mode, each with a stable `code`. Malformed input
 * (a PEM that does not parse, a bad token, a CSR whose signature fails) is a ValidationError
 * from util/errors instead: these classes are for well-formed material that must not be trusted.
 */
import { SwarmnetError } from '../util/errors.js';

/** The certificate is not signed by the given CA (or the CA certificate is not a CA). */
export class UntrustedCertError extends SwarmnetError {
  override readonly code = 'ECERTUNTRUSTED';
}

/** `now` is past the certificate's notAfter (or the CA's). */
export class CertExpiredError extends SwarmnetError {
  override readonly code = 'ECERTEXPIRED';
  constructor(message: string, readonly notAfter: Date) {
    super(message);
  }
}

/** `now` is before the certificate's notBefore (or the CA's): a clock far behind the issuer's. */
export class CertNotYetValidError extends SwarmnetError {
  override readonly code = 'ECERTNOTYETVALID';
  constructor(message: string, readonly notBefore: Date) {
    super(message);
  }
}

/** A trust file on disk is unsafe to use, e.g. a private key readable by group or others. */
export class TrustFileError extends SwarmnetError {
  override readonly code = 'ETRUSTFILE';
  constructor(message: string, readonly path: string) {
    super(`${path}: ${message}`);
  }
}
