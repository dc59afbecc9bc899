import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './fixtures.js';

/** A PEM certificate and its private key, as file paths. */
export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestPki {
  dir: string;
  /** The CA that signs the server and the good client certificate (the broker's `cafile`). */
  ca: CertFiles;
  /** Server certificate for 127.0.0.1 / localhost (subjectAltName IP:127.0.0.1, DNS:localhost), signed by `ca`. */
  server: CertFiles;
  /** Client certificate signed by `ca`, CN = `clientCn`. */
  client: CertFiles;
  /** A second, unrelated CA. */
  otherCa: CertFiles;
  /** Client certificate signed by `otherCa` (same CN as `client`): the broker must refuse it. */
  wrongClient: CertFiles;
  clientCn: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

// Minimal request config: no reliance on the system openssl.cnf defaults.
const REQ_CONF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

function newKey(dir: string, name: string): string {
  const key = `${name}.key`;
  // EC P-256: generating RSA keys on a 2-core test machine is needlessly slow.
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], dir);
  return join(dir, key);
}

function selfSignedCa(dir: string, name: string, cn: string): CertFiles {
  const key = newKey(dir, name);
  const cert = `${name}.crt`;
  openssl(['req', '-config', 'req.cnf', '-new', '-x509', '-key', key, '-subj', `/CN=${cn}`, '-days', '2', '-extensions', 'v3_ca', '-out', cert], dir);
  return { cert: join(dir, cert), key };
}

function signed(dir: string, name: string, cn: string, ca: CertFiles, extensions: string): CertFiles {
  const key = newKey(dir, name);
  const csr = `${name}.csr`;
  const ext = `${name}.ext`;
  const cert = `${name}.crt`;
  writeFileSync(join(dir, ext), extensions);
  openssl(['req', '-config', 'req.cnf', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', cert], dir);
  return { cert: join(dir, cert), key };
}

/**
 * Generates a throwaway PKI with `openssl` in a temp dir: a CA, a server certificate for
 * 127.0.0.1/localhost, a client certificate from the CA, and one from a different CA.
 */
export function generatePki(opts: { clientCn?: string } = {}): TestPki {
  const dir = tempDir('ec-pki-');
  const clientCn = opts.clientCn ?? 'edge-daemon';
  writeFileSync(join(dir, 'req.cnf'), REQ_CONF);
  const leaf = 'basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n';
  const ca = selfSignedCa(dir, 'ca', 'edge-classifier test CA');
  const otherCa = selfSignedCa(dir, 'other-ca', 'unrelated test CA');
  const server = signed(dir, 'server', 'localhost', ca, `${leaf}extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n`);
  const client = signed(dir, 'client', clientCn, ca, `${leaf}extendedKeyUsage = clientAuth\n`);
  const wrongClient = signed(dir, 'wrong-client', clientCn, otherCa, `${leaf}extendedKeyUsage = clientAuth\n`);
  return { dir, ca, server, client, otherCa, wrongClient, clientCn };
}
