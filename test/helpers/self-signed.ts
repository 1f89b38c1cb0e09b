// A self-signed localhost certificate made by openssl, for tests that serve
// https or wss.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The certificate and key, as files in `dir` and as their PEM bytes. */
export interface SelfSigned {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

/** Writes cert.pem and key.pem into `dir`; returns them, or the reason openssl could not. */
export function selfSignedCertificate(dir: string): SelfSigned | string {
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'];
  const result = spawnSync('openssl', [...args, '-keyout', keyPath, '-out', certPath], {
    stdio: 'ignore',
    timeout: 30_000,
  });
  if (result.error !== undefined) return `openssl is not available (${result.error.message})`;
  if (result.status !== 0) return `openssl failed with exit code ${String(result.status)}`;
  return { certPath, keyPath, cert: readFileSync(certPath), key: readFileSync(keyPath) };
}
