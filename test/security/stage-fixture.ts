// Jails for the stage's isolation tests (test/security/stage-*.test.ts): a small root (the
// host's /usr bound read-only, merged-usr links, a writable etc/tmp/root, a minimal /dev
// made by the stage) laid out like a state folder (STATE/jails/NAME/root), so the leak
// check knows the test's objects by the folder's tag. The jail's pid 1 may run a holder of
// the test's choice: what it does runs with exactly what jy-stage hands the jail (exec goes
// through jy-enter, which is not under test here).
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLinuxDriver } from '../../src/platform/linux/index.ts';
import { create, destroy, type LifeConfig } from '../../src/platform/linux/create.ts';
import type { CreateFacts, JailContext, MountFacts, NetworkFacts } from '../../src/platform/driver.ts';
import type { MountPlan } from '../../src/skeleton/plan.ts';
import type { ParamValue } from '../../src/conf/spec.ts';
import { snapshot, assertNoLeaks, type SystemSnapshot } from '../helpers/leaks.ts';

export const CGROUP_PARENT = 'jailyard-jystage';
export const driver = createLinuxDriver({ cgroupParent: CGROUP_PARENT });

export interface StageJail {
  ctx: JailContext;
  plan: MountPlan;
  root: string;
  net?: NetworkFacts;
  mounts?: MountFacts;
  facts?: CreateFacts;
}

/** A state folder for one test file, and the leak check over its objects. */
export class StageHost {
  readonly state: string;
  private readonly baseline: SystemSnapshot;
  private readonly jails: StageJail[] = [];
  private n = 0;

  constructor(area: string) {
    this.baseline = snapshot();
    this.state = mkdtempSync(join(tmpdir(), `jy-${area}-`));
  }

  /** A jail's context and plan (nothing made yet). */
  define(params: Record<string, ParamValue> = {}): StageJail {
    const name = `st${this.n++}`;
    const stateDir = `${this.state}/jails/${name}`;
    const root = `${stateDir}/root`;
    mkdirSync(`${root}/etc`, { recursive: true });
    for (const f of ['passwd', 'group']) copyFileSync(`/etc/${f}`, `${root}/etc/${f}`);
    const plan: MountPlan = {
      root,
      mkdirs: [`${root}/tmp`, `${root}/root`, `${root}/usr`],
      symlinks: ['bin', 'lib', 'lib64', 'sbin'].map((d) => ({ path: `${root}/${d}`, target: `usr/${d}` })),
      mounts: [{ kind: 'bind', source: '/usr', target: `${root}/usr`, readonly: true, origin: 'skeleton-ro' }],
    };
    const jid = 20000 + ((process.pid * 7 + this.n * 13) % 10000);
    const ctx: JailContext = { spec: { name, params: { name, ...params } }, name, jid, path: root, stateDir };
    const jail: StageJail = { ctx, plan, root };
    this.jails.push(jail);
    return jail;
  }

  /** Network and mounts (and the stage's mount points /proc, /.jailyard/tini). */
  async prepare(jail: StageJail): Promise<StageJail> {
    jail.net = await driver.setupNetwork(jail.ctx);
    jail.mounts = await driver.mount(jail.ctx, jail.plan);
    mkdirSync(`${jail.root}/proc`, { recursive: true });
    mkdirSync(`${jail.root}/.jailyard`, { recursive: true });
    closeSync(openSync(`${jail.root}/.jailyard/tini`, 'a'));
    return jail;
  }

  /** prepare(), then the stage; `holder` replaces pid 1's `sleep infinity`. */
  async start(
    jail: StageJail,
    opts: { holder?: string[]; beforeCreate?: (j: StageJail) => void } = {},
  ): Promise<StageJail> {
    await this.prepare(jail);
    opts.beforeCreate?.(jail);
    const cfg: LifeConfig = {
      cgroups: { parent: CGROUP_PARENT, base: 'self' },
      tini: '/usr/bin/tini-static',
      holder: opts.holder ?? ['sleep', 'infinity'],
      readyTimeoutMs: 10_000,
    };
    jail.facts = await create(jail.ctx, jail.net!, {}, cfg, jail.mounts);
    return jail;
  }

  async stop(jail: StageJail): Promise<void> {
    if (jail.facts) await destroy(jail.ctx, jail.facts, 1000);
    jail.facts = undefined;
    if (jail.mounts) await driver.unmount(jail.ctx, jail.mounts);
    jail.mounts = undefined;
    if (jail.net) await driver.teardownNetwork(jail.ctx, jail.net);
    jail.net = undefined;
  }

  /** Stops every jail, removes the bridge if this left it unused, checks for leaks. */
  async close(): Promise<void> {
    for (const j of this.jails) await this.stop(j).catch(() => {});
    await driver.removeBridgeIfUnused();
    assertNoLeaks(this.baseline, this.state);
    rmSync(this.state, { recursive: true, force: true });
  }
}

/** `sh -c script` in the jail through the driver's exec. */
export function sh(jail: StageJail, script: string) {
  return driver.runInJail(jail.ctx, jail.facts!, ['/bin/sh', '-c', script]);
}

/** The jail's console log (pid 1's stdout and stderr). */
export function consoleLog(jail: StageJail): string {
  try {
    return readFileSync(`${jail.ctx.stateDir}/console.log`, 'utf8');
  } catch {
    return '';
  }
}

/** Waits until the console log has `marker` (a holder's last line); returns the log. */
export async function waitForLog(jail: StageJail, marker: string, ms = 10_000): Promise<string> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const log = consoleLog(jail);
    if (log.includes(marker)) return log;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no ${marker} in the console log: ${consoleLog(jail)}`);
}

/**
 * A static probe of system calls, compiled into the jail's /tmp: one `name=ok|ERRNO` line
 * per call (the i386 ones through int 0x80; NOIA32 when the kernel has no i386 entry). Run it only inside a jail: outside, unshare and
 * mount would act on the test process's own namespaces (harmless, but meaningless).
 */
export const PROBE_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/keyctl.h>
#include <setjmp.h>
#include <signal.h>
static long int80(long nr, long a, long b, long c) {
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}
/* A kernel without IA32 emulation answers int 0x80 with SIGSEGV: no i386 call exists there,
 * so none can get past the filter; such calls print NOIA32. */
static sigjmp_buf no_ia32;
static void on_segv(int sig) {
	(void)sig;
	siglongjmp(no_ia32, 1);
}
static void out(const char *name, long r) {
	printf("%s=%s\n", name, r >= 0 ? "ok" : strerrorname_np(errno));
	errno = 0;
}
static void out32(const char *name, long nr, long a, long b, long c) {
	signal(SIGSEGV, on_segv);
	if (sigsetjmp(no_ia32, 1)) {
		printf("%s=NOIA32\n", name);
	} else {
		long r = int80(nr, a, b, c);
		printf("%s=%s\n", name, r >= 0 ? "ok" : strerrorname_np((int)-r));
	}
	signal(SIGSEGV, SIG_DFL);
}
int main(void) {
	out("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0));
	out("add_key", syscall(SYS_add_key, "user", "jy", "x", 1, KEY_SPEC_SESSION_KEYRING));
	out32("keyctl_i386", 288, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
	out32("unshare_i386", 310, CLONE_NEWUSER, 0, 0);
	out32("getpid_i386", 20, 0, 0, 0);
	out("unshare_user", unshare(CLONE_NEWUSER));
	out("unshare_mnt", unshare(CLONE_NEWNS));
	out("unshare_files", unshare(CLONE_FILES));
	out("clone3", syscall(SYS_clone3, NULL, 0));
	out("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
	out("umount", umount2("/proc/sys", MNT_DETACH));
	out("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 0));
	out("open_tree_attr", syscall(467, AT_FDCWD, "/", 0, NULL, 0));
	out("setns", setns(0, 0));
	out("bpf", syscall(SYS_bpf, 0, NULL, 0));
	out("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
	out("userfaultfd", syscall(SYS_userfaultfd, 0));
	out("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
	out("syslog", syscall(SYS_syslog, 10, NULL, 0));
	out("tiocsti", syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, "x"));
	out("personality_norandom", syscall(SYS_personality, ADDR_NO_RANDOMIZE));
	out("personality_query", syscall(SYS_personality, 0xffffffffUL));
	out("socket_raw", socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, 1));
	out("socket_packet", socket(AF_PACKET, SOCK_RAW, 0));
	out("socket_alg", socket(AF_ALG, SOCK_SEQPACKET, 0));
	out("socket_vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
	out("socket_netlink", socket(AF_NETLINK, SOCK_RAW, 0));
	out("socket_tcp", socket(AF_INET, SOCK_STREAM, 0));
	pid_t p = fork();
	if (p == 0) _exit(0);
	out("fork", p);
	return 0;
}
`;

/** Compiles the probe (static) to `out`. */
export function buildProbe(out: string): void {
  execFileSync('gcc', ['-static', '-O0', '-x', 'c', '-o', out, '-'], { input: PROBE_C });
}

/** The probe's `name=result` lines as a map. */
export function probeResults(text: string): Record<string, string> {
  const res: Record<string, string> = {};
  for (const m of text.matchAll(/^([a-z0-9_]+)=([A-Za-z0-9_]+)$/gm)) res[m[1]!] = m[2]!;
  return res;
}

/** ping in Python (the host has no ping(8)): one ICMP echo to argv[1] over a raw socket;
 * prints ping=ok on a reply, ping=<error> otherwise. */
export const PING_PY = `
import socket, struct, sys
def csum(b):
    b += b'\\0' * (len(b) % 2)
    x = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    x = (x >> 16) + (x & 0xffff)
    return ~(x + (x >> 16)) & 0xffff
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(1)
    for attempt in range(3):
        pkt = struct.pack('!BBHHH', 8, 0, 0, 0x4a59, attempt) + b'jailyard'
        s.sendto(struct.pack('!BBHHH', 8, 0, csum(pkt), 0x4a59, attempt) + b'jailyard', (sys.argv[1], 0))
        try:
            while True:
                d, a = s.recvfrom(1024)
                if a[0] == sys.argv[1] and d[(d[0] & 15) * 4] == 0:
                    print('ping=ok')
                    sys.exit(0)
        except socket.timeout:
            pass
    print('ping=timeout')
except OSError as e:
    print('ping=' + (e.strerror or str(e)).replace(' ', '_'))
sys.exit(1)
`;
