// How a node reaches etcd: client TLS (a CA, a client certificate and its key) and an etcd
// user with its password (docs/cluster.md#securing-etcd). Read and checked once, before
// anything is opened; the result is handed, in memory, to every etcd client of the process
// (the cluster state's and the agent's keepalive thread) and to the /health probe.
//
// Secrets never travel on a command line: the password comes from a file (refused if its
// mode lets group or others read it) or from $JAILYARD_ETCD_PASSWORD, which is removed from
// this process's environment once read so nothing the daemon spawns inherits it.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { getCACertificates } from 'node:tls';
import { JailyardError } from '../errors.ts';

export const PASSWORD_ENV = 'JAILYARD_ETCD_PASSWORD';

/** What every etcd client of the process needs beyond the endpoints. */
export interface EtcdAccess {
  /** TLS: set when the endpoints are https://. */
  tls?: {
    /** PEM roots the members' certificates are checked against. */
    ca: Buffer;
    /** Where `ca` came from: the --etcd-cacert path, or 'system' (the system's and Node's CAs). */
    caSource: string;
    /** Client certificate (PEM chain) and its key, for members run with --client-cert-auth. */
    cert?: Buffer;
    key?: Buffer;
  };
  /** etcd user (RBAC). */
  auth?: { username: string; password: string };
}

export interface EtcdAccessFlags {
  endpoints: readonly string[];
  cacert?: string;
  cert?: string;
  key?: string;
  user?: string;
  passwordFile?: string;
}

const usage = (param: string, msg: string): JailyardError => new JailyardError('JY_ERR_USAGE', msg, { param });

function readFlagFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw usage(
      flag,
      `${flag} ${path}: cannot read the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** The PEM certificates of a file, each parsed (a file that holds none is refused). */
function certificates(flag: string, path: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw usage(flag, `${flag} ${path}: no PEM certificate in the file`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw usage(flag, `${flag} ${path}: certificate ${i + 1} is not valid: ${(e as Error).message}`);
    }
  });
}

/** The trust roots for https:// endpoints without --etcd-cacert: the system's CA store and
 * Node's default ones (its bundled list and NODE_EXTRA_CA_CERTS). */
function systemRoots(): Buffer {
  const seen = new Set<string>();
  for (const c of [...getCACertificates('system'), ...getCACertificates('default')]) seen.add(c.trim());
  return Buffer.from(`${[...seen].join('\n')}\n`);
}

/** The password of --etcd-password-file: its first line; the file must be the owner's alone. */
function readPasswordFile(path: string): string {
  const flag = '--etcd-password-file';
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw usage(
      flag,
      `${flag} ${path}: cannot read the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw usage(flag, `${flag} ${path}: not a regular file`);
    if (st.mode & 0o044)
      throw usage(
        flag,
        `${flag} ${path}: the file is readable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); make it the owner's alone (chmod 600 ${path})`,
      );
    const text = readFileSync(fd, 'utf8');
    const password = text.replace(/\r?\n$/, '');
    if (password === '') throw usage(flag, `${flag} ${path}: the file is empty`);
    if (/[\r\n]/.test(password)) throw usage(flag, `${flag} ${path}: the password must be one line`);
    return password;
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks the flags against each other and the endpoints, reads and checks every file, and
 * takes the password. Throws JY_ERR_USAGE naming the flag (and the file) on any problem.
 * `env` is the process's environment: $JAILYARD_ETCD_PASSWORD is deleted from it once read.
 */
export function readEtcdAccess(f: EtcdAccessFlags, env: NodeJS.ProcessEnv = process.env): EtcdAccess {
  const out: EtcdAccess = {};
  const https = f.endpoints.filter((u) => u.startsWith('https:'));
  const tlsFlag =
    f.cacert !== undefined
      ? '--etcd-cacert'
      : f.cert !== undefined
        ? '--etcd-cert'
        : f.key !== undefined
          ? '--etcd-key'
          : undefined;
  if (https.length && https.length !== f.endpoints.length)
    throw usage('--etcd', '--etcd mixes http:// and https:// URLs: give every member the same scheme');
  if (tlsFlag && !https.length)
    throw usage(tlsFlag, `${tlsFlag} is for TLS: the --etcd URLs must be https://, got ${f.endpoints.join(',')}`);
  if ((f.cert === undefined) !== (f.key === undefined))
    throw usage(
      f.cert === undefined ? '--etcd-key' : '--etcd-cert',
      '--etcd-cert and --etcd-key go together (the client certificate and its private key)',
    );
  if (https.length) {
    let ca: Buffer;
    let caSource = 'system';
    if (f.cacert !== undefined) {
      ca = readFlagFile('--etcd-cacert', f.cacert);
      certificates('--etcd-cacert', f.cacert, ca);
      caSource = f.cacert;
    } else {
      ca = systemRoots();
    }
    out.tls = { ca, caSource };
    if (f.cert !== undefined && f.key !== undefined) {
      const cert = readFlagFile('--etcd-cert', f.cert);
      const [leaf] = certificates('--etcd-cert', f.cert, cert);
      const key = readFlagFile('--etcd-key', f.key);
      let keyObject: ReturnType<typeof createPrivateKey>;
      try {
        keyObject = createPrivateKey(key);
      } catch (e) {
        throw usage('--etcd-key', `--etcd-key ${f.key}: not a PEM private key: ${(e as Error).message}`);
      }
      if (!leaf!.checkPrivateKey(keyObject))
        throw usage(
          '--etcd-key',
          `--etcd-key ${f.key} is not the private key of the certificate in --etcd-cert ${f.cert}`,
        );
      const now = Date.now();
      if (Date.parse(leaf!.validTo) < now || Date.parse(leaf!.validFrom) > now)
        throw usage(
          '--etcd-cert',
          `--etcd-cert ${f.cert}: the certificate is not valid now (from ${leaf!.validFrom} to ${leaf!.validTo})`,
        );
      out.tls.cert = cert;
      out.tls.key = key;
    }
  }
  const envPassword = env[PASSWORD_ENV];
  if (f.user === undefined) {
    if (f.passwordFile !== undefined)
      throw usage('--etcd-password-file', '--etcd-password-file needs --etcd-user NAME');
  } else {
    if (f.user === '' || /[\s\0]/.test(f.user))
      throw usage('--etcd-user', `--etcd-user must be a user name, got "${f.user}"`);
    let password: string;
    if (f.passwordFile !== undefined) password = readPasswordFile(f.passwordFile);
    else if (envPassword !== undefined && envPassword !== '') password = envPassword;
    else
      throw usage(
        '--etcd-user',
        `--etcd-user needs a password: --etcd-password-file FILE (mode 0600) or $${PASSWORD_ENV}; never on the command line`,
      );
    out.auth = { username: f.user, password };
  }
  // nothing the daemon spawns (jails' exec.* commands, the fence guard) inherits it
  delete env[PASSWORD_ENV];
  return out;
}

/** The etcd3 client options of `access` (IOptions' credentials and auth). */
export function etcdClientOptions(access: EtcdAccess | undefined): {
  credentials?: { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer };
  auth?: { username: string; password: string };
} {
  return {
    ...(access?.tls
      ? {
          credentials: {
            rootCertificate: access.tls.ca,
            ...(access.tls.key ? { privateKey: access.tls.key } : {}),
            ...(access.tls.cert ? { certChain: access.tls.cert } : {}),
          },
        }
      : {}),
    ...(access?.auth ? { auth: { username: access.auth.username, password: access.auth.password } } : {}),
  };
}
