/**
 * A throw-away certificate so an emulator can serve https/wss (clients such as the AssemblyAI SDK refuse
 * anything but `wss:`). Made by the `openssl` binary: RSA 2048, self-signed, valid one day, for
 * 127.0.0.1 and localhost (subjectAltName, which is what clients check). A client trusts it by taking
 * the certificate itself as its CA (`ca: cert`).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TlsOptions } from './server';

export interface SelfSignedCertificate extends TlsOptions {
  key: Buffer;
  cert: Buffer;
  /** The PEM files written into the directory given. */
  keyPath: string;
  certPath: string;
}

/** The `openssl` binary failed (missing, or refused the request). */
export class CertificateError extends Error {
  readonly code = 'CERTIFICATE_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'CertificateError';
  }
}

/** Write `key.pem` and `cert.pem` into `dir` (which must exist) and return them. */
export async function selfSignedCertificate(dir: string): Promise<SelfSignedCertificate> {
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  try {
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', keyPath, '-out', certPath,
    ]);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    const why = err.code === 'ENOENT' ? 'the openssl binary is not installed' : (err.stderr?.trim() || err.message);
    throw new CertificateError(`could not make a self-signed certificate in ${dir}: ${why}`);
  }
  return { key: await readFile(keyPath), cert: await readFile(certPath), keyPath, certPath };
}
