// serve's etcd access flags, read and checked before anything is opened (src/cluster/
// etcd-access.ts): certificate files, the password file's mode, the password's sources.
// Pure: files in a temporary folder, no etcd (test/cluster/etcd-tls.test.ts has the real one).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdClientOptions, PASSWORD_ENV, readEtcdAccess } from '../../src/cluster/etcd-access.ts';
import { JailyardError } from '../../src/errors.ts';
import { accessRefusal } from '../../src/cluster/state.ts';
import { makePki, type TestPki } from './etcd-certs.ts';

const HTTPS = ['https://127.0.0.1:2379'];

/** The JY_ERR_USAGE `fn` throws: its param and message. */
function refused(fn: () => unknown): { param: string | undefined; message: string } {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof JailyardError, String(e));
    assert.equal(e.code, 'JY_ERR_USAGE');
    return { param: e.place.param, message: e.message };
  }
  assert.fail('not refused');
}

describe('etcd access flags', () => {
  let dir = '';
  let pki: TestPki;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'jy-etcd-access-'));
    pki = makePki(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('client TLS: the files are read, checked and handed to the etcd3 client', () => {
    const a = readEtcdAccess({ endpoints: HTTPS, cacert: pki.ca, cert: pki.clientCert, key: pki.clientKey }, {});
    assert.equal(a.tls?.caSource, pki.ca);
    const o = etcdClientOptions(a);
    assert.match(o.credentials!.rootCertificate.toString(), /BEGIN CERTIFICATE/);
    assert.match(o.credentials!.certChain!.toString(), /BEGIN CERTIFICATE/);
    assert.match(o.credentials!.privateKey!.toString(), /PRIVATE KEY/);
    assert.equal(o.auth, undefined);
    // plain http: no credentials at all (etcd3 would otherwise speak TLS to every member)
    assert.deepEqual(etcdClientOptions(readEtcdAccess({ endpoints: ['http://127.0.0.1:2379'] }, {})), {});
  });

  test('https without --etcd-cacert: the system CAs', () => {
    const a = readEtcdAccess({ endpoints: HTTPS }, {});
    assert.equal(a.tls?.caSource, 'system');
    assert.ok((a.tls!.ca.toString().match(/BEGIN CERTIFICATE/g) ?? []).length > 10, 'system roots loaded');
  });

  test('a bad certificate or key names the option and the path', () => {
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    let r = refused(() => readEtcdAccess({ endpoints: HTTPS, cacert: junk }, {}));
    assert.equal(r.param, '--etcd-cacert');
    assert.match(r.message, new RegExp(`--etcd-cacert ${junk}: no PEM certificate`));
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, cacert: join(dir, 'absent.crt') }, {}));
    assert.match(r.message, /--etcd-cacert .*absent\.crt: cannot read the file: ENOENT/);
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, cacert: pki.ca, cert: junk, key: pki.clientKey }, {}));
    assert.equal(r.param, '--etcd-cert');
    assert.match(r.message, new RegExp(`--etcd-cert ${junk}`));
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, cacert: pki.ca, cert: pki.clientCert, key: junk }, {}));
    assert.equal(r.param, '--etcd-key');
    assert.match(r.message, new RegExp(`--etcd-key ${junk}: not a PEM private key`));
    // a key of another certificate
    r = refused(() =>
      readEtcdAccess({ endpoints: HTTPS, cacert: pki.ca, cert: pki.clientCert, key: pki.otherClientKey }, {}),
    );
    assert.equal(r.param, '--etcd-key');
    assert.match(r.message, /is not the private key of the certificate in --etcd-cert/);
  });

  test('TLS flags and endpoints must agree', () => {
    let r = refused(() => readEtcdAccess({ endpoints: ['http://127.0.0.1:2379'], cacert: pki.ca }, {}));
    assert.equal(r.param, '--etcd-cacert');
    assert.match(r.message, /must be https:\/\//);
    r = refused(() => readEtcdAccess({ endpoints: [...HTTPS, 'http://127.0.0.1:2380'] }, {}));
    assert.equal(r.param, '--etcd');
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, cacert: pki.ca, cert: pki.clientCert }, {}));
    assert.equal(r.param, '--etcd-cert');
    assert.match(r.message, /go together/);
  });

  test('the password: from a file of the owner alone, or the environment (then removed from it)', () => {
    const pw = join(dir, 'pw');
    writeFileSync(pw, 's3cret-pw\n', { mode: 0o600 });
    chmodSync(pw, 0o600);
    let a = readEtcdAccess({ endpoints: HTTPS, user: 'jy', passwordFile: pw }, {});
    assert.deepEqual(a.auth, { username: 'jy', password: 's3cret-pw' });
    assert.deepEqual(etcdClientOptions(a).auth, { username: 'jy', password: 's3cret-pw' });

    chmodSync(pw, 0o640);
    let r = refused(() => readEtcdAccess({ endpoints: HTTPS, user: 'jy', passwordFile: pw }, {}));
    assert.equal(r.param, '--etcd-password-file');
    assert.match(r.message, /readable by group or others \(mode 0640\).*chmod 600/);
    chmodSync(pw, 0o604);
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, user: 'jy', passwordFile: pw }, {}));
    assert.match(r.message, /mode 0604/);

    const env: NodeJS.ProcessEnv = { [PASSWORD_ENV]: 'from-env', OTHER: 'x' };
    a = readEtcdAccess({ endpoints: ['http://127.0.0.1:2379'], user: 'jy' }, env);
    assert.equal(a.auth?.password, 'from-env');
    assert.deepEqual(env, { OTHER: 'x' }, 'nothing the daemon spawns inherits the password');

    r = refused(() => readEtcdAccess({ endpoints: HTTPS, user: 'jy' }, {}));
    assert.equal(r.param, '--etcd-user');
    assert.match(
      r.message,
      /needs a password: --etcd-password-file FILE .* or \$JAILYARD_ETCD_PASSWORD; never on the command line/,
    );
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, passwordFile: pw }, {}));
    assert.equal(r.param, '--etcd-password-file');
    const empty = join(dir, 'empty');
    writeFileSync(empty, '', { mode: 0o600 });
    r = refused(() => readEtcdAccess({ endpoints: HTTPS, user: 'jy', passwordFile: empty }, {}));
    assert.match(r.message, /is empty/);
  });

  test("start-up refusals: TLS and the user's are final and explained; being unreachable is not", () => {
    const wrapped = (message: string, name = 'GRPCUnavailableError'): Error => {
      const inner = new Error(message);
      Object.defineProperty(inner, 'name', { value: name });
      return new JailyardError(
        'JY_ERR_CLUSTER',
        `etcd: listing the cluster state failed: ${message}`,
        {},
        { cause: inner },
      );
    };
    class EtcdAuthenticationFailedError extends Error {}
    class EtcdPermissionDeniedError extends Error {}
    const grpcTls =
      '14 UNAVAILABLE: No connection established. Last error: 40EDC4544E7F0000:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42\n (2026-12-02T23:49:44.309Z). Resolution note: ';
    assert.equal(
      accessRefusal(wrapped(grpcTls)),
      "TLS failed: ssl/tls alert bad certificate: the member refused this node's client certificate (none given, or not signed by a CA the member trusts; --etcd-cert, --etcd-key)",
    );
    assert.match(
      accessRefusal(
        wrapped(
          '14 UNAVAILABLE: No connection established. Last error: unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca. Resolution note: ',
        ),
      )!,
      /^TLS failed: unable to verify the first certificate: the member's certificate is not signed by a trusted CA/,
    );
    const auth = new JailyardError(
      'JY_ERR_CLUSTER',
      'x',
      {},
      {
        cause: new EtcdAuthenticationFailedError(
          '3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password',
        ),
      },
    );
    assert.equal(accessRefusal(auth), 'etcd refused the user: authentication failed, invalid user ID or password');
    assert.match(
      accessRefusal(new EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied'))!,
      /^etcd refused the user: permission denied \(no --etcd-user/,
    );
    // worth another try: refused connections, a handshake cut short, no leader
    assert.equal(
      accessRefusal(
        wrapped('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379'),
      ),
      undefined,
    );
    assert.equal(
      accessRefusal(
        wrapped('14 UNAVAILABLE: Client network socket disconnected before secure TLS connection was established'),
      ),
      undefined,
    );
    assert.equal(accessRefusal(wrapped('etcdserver: no leader')), undefined);
  });
});
