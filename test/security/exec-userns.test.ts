// An exec into a user-namespace jail must run as the jail's root, i.e. the range's first
// host uid, not as host root: jy-enter joins the user namespace of the jail's pid 1 (last,
// in the child) whenever it is not the host's. The target here is a stand-in for such a
// jail's pid 1 (new user namespace mapping 0 -> host 100000..165535, and its own mount, pid,
// uts, ipc, net namespaces), so this checks jy-enter alone, independently of how jails are
// started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { JY_ENTER } from '../../src/platform/linux/native.ts';
import { waitFor } from '../../src/platform/linux/proc.ts';
import { JAIL_KEEP_CAPS } from '../../src/platform/linux/caps.ts';

const TARGET = String.raw`
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
NS = 0x10000000 | 0x00020000 | 0x20000000 | 0x04000000 | 0x08000000 | 0x40000000
go_r, go_w = os.pipe()
up_r, up_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(NS) != 0:
        os._exit(11)
    os.write(up_w, b'u')
    os.read(go_r, 1)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    init = os.fork()
    if init == 0:
        os.execvp('sleep', ['sleep', '60'])
    os.write(1, b'%d\n' % init)
    os.waitpid(init, 0)
    os._exit(0)
os.read(up_r, 1)
for f in ('uid_map', 'gid_map'):
    with open('/proc/%d/%s' % (pid, f), 'w') as fh:
        fh.write('0 100000 65536')
os.write(go_w, b'g')
os.waitpid(pid, 0)
`;

test("exec into a user-namespace jail runs as the jail's root: the range's first host uid", {
  timeout: 60_000,
}, async (t) => {
  const holder = spawn('python3', ['-c', TARGET], { stdio: ['ignore', 'pipe', 'inherit'] });
  let target = 0;
  t.after(() => {
    // the stand-in's pid 1 first (its parent and the holder then exit on their own)
    if (target) process.kill(target, 'SIGKILL');
    holder.kill('SIGKILL');
  });
  target = await new Promise<number>((resolve, reject) => {
    holder.stdout.setEncoding('utf8').once('data', (d: string) => resolve(Number(d.trim())));
    holder.once('exit', (code) => reject(new Error(`target exited ${code}`)));
  });
  assert.ok(target > 0);
  const enter = spawn(
    JY_ENTER,
    [
      '--target',
      String(target),
      '--keep-caps',
      JAIL_KEEP_CAPS,
      '--seccomp',
      '',
      '--',
      'sh',
      '-c',
      'id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; exec sleep 2.5',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  enter.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  enter.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => enter.on('exit', resolve));
  for (let i = 0; i < 200 && out.split('\n').length < 4; i++) await new Promise((res) => setTimeout(res, 25));
  const [uid, map, ns] = out.split('\n');
  assert.equal(uid, '0', `root inside: ${out} ${err}`);
  assert.match(map ?? '', /^\s*0\s+100000\s+65536$/, "inside the jail's user namespace");
  assert.equal(ns, readlinkSync(`/proc/${target}/ns/user`));
  assert.notEqual(ns, readlinkSync('/proc/self/ns/user'));
  // seen from the host, the program is the range's first uid, not root (the shell has
  // printed its lines but may not have exec'd sleep yet: looked for until it has)
  const sleeping = () =>
    readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .flatMap((d) => {
        try {
          if (
            readlinkSync(`/proc/${d}/ns/user`) !== ns ||
            readFileSync(`/proc/${d}/cmdline`, 'utf8') !== 'sleep\x002.5\x00'
          )
            return [];
          return [readFileSync(`/proc/${d}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1]];
        } catch {
          return [];
        }
      });
  let hostUids: (string | undefined)[] = [];
  await waitFor(() => (hostUids = sleeping()).length > 0, 2000, 25);
  assert.deepEqual(hostUids, ['100000']);
  assert.equal(await exited, 0, err);
});
