// A throw-away PKI for the etcd TLS tests, made with openssl in the test's own folder: a CA,
// a server certificate for 127.0.0.1 and a client certificate, each with its key (P-256).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPki {
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA (with its own client certificate): not trusted by the server. */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
}

const ossl = (args: string[]): void => void execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function makeCa(dir: string, name: string): { crt: string; key: string } {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  ossl(['req', '-x509', '-new', '-key', key, '-out', crt, '-days', '2', '-subj', `/CN=${name}`]);
  return { crt, key };
}

function makeLeaf(
  dir: string,
  ca: { crt: string; key: string },
  name: string,
  cn: string,
  ext: string,
): { crt: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const crt = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, `${ext}\n`);
  ossl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  ossl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
  ossl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.crt,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    crt,
    '-days',
    '2',
    '-extfile',
    extFile,
  ]);
  return { crt, key };
}

export function makePki(dir: string): TestPki {
  const ca = makeCa(dir, 'ca');
  const server = makeLeaf(
    dir,
    ca,
    'server',
    '127.0.0.1',
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment',
  );
  // its CN is no etcd user: with auth enabled, the certificate alone grants nothing
  const client = makeLeaf(dir, ca, 'client', 'jy-node-client', 'extendedKeyUsage=clientAuth');
  const other = makeCa(dir, 'other-ca');
  const otherClient = makeLeaf(dir, other, 'other-client', 'jy-intruder', 'extendedKeyUsage=clientAuth');
  return {
    ca: ca.crt,
    caKey: ca.key,
    serverCert: server.crt,
    serverKey: server.key,
    clientCert: client.crt,
    clientKey: client.key,
    otherCa: other.crt,
    otherClientCert: otherClient.crt,
    otherClientKey: otherClient.key,
  };
}
