/**
 * A throwaway PKI for mTLS tests, generated at test time with the `openssl` CLI into a temp dir:
 * a test CA, a server certificate for 127.0.0.1, client certificates by CN, and a second,
 * untrusted CA with its own client. When `openssl` is missing, `opensslAvailable` is false and the
 * suites skip with a visible warning (CI has openssl).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const opensslAvailable: boolean = (() => {
  const probe = spawnSync('openssl', ['version'], { stdio: 'ignore' });
  return !probe.error && probe.status === 0;
})();

export interface KeyAndCert {
  key: string;
  cert: string;
}

export interface TestPki {
  dir: string;
  /** PEM of the trusted test CA. */
  ca: string;
  /** Server key and certificate (CN=localhost, SAN IP:127.0.0.1, DNS:localhost), signed by the CA. */
  server: KeyAndCert;
  /** Issues a client certificate with the given CN, signed by the trusted CA. */
  client(cn: string): KeyAndCert;
  /** PEM of a second CA the server does not trust. */
  otherCa: string;
  /** Issues a client certificate with the given CN, signed by the untrusted CA. */
  foreignClient(cn: string): KeyAndCert;
  cleanup(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** EC P-256 keys: fast to generate. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createTestPki(): TestPki {
  if (!opensslAvailable) throw new Error('openssl is not installed');
  const dir = mkdtempSync(path.join(tmpdir(), 'frontdoor-pki-'));
  let serial = 1;
  const read = (file: string) => readFileSync(path.join(dir, file), 'utf8');

  const makeCa = (name: string, cn: string) => {
    openssl(dir, ['req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return read(`${name}.crt`);
  };

  const issue = (ca: string, name: string, cn: string, extensions: string): KeyAndCert => {
    const file = `${name}-${serial}`;
    writeFileSync(path.join(dir, `${file}.ext`), extensions);
    openssl(dir, ['req', '-new', ...NEW_KEY, '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${cn}`]);
    openssl(dir, ['x509', '-req', '-in', `${file}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', String(serial++),
      '-days', '2', '-out', `${file}.crt`, '-extfile', `${file}.ext`]);
    return { key: read(`${file}.key`), cert: read(`${file}.crt`) };
  };

  const clientExt = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';
  const ca = makeCa('ca', 'frontdoor test CA');
  const otherCa = makeCa('other-ca', 'untrusted test CA');
  const server = issue('ca', 'server', 'localhost',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  return {
    dir,
    ca,
    server,
    client: (cn) => issue('ca', 'client', cn, clientExt),
    otherCa,
    foreignClient: (cn) => issue('other-ca', 'foreign', cn, clientExt),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
