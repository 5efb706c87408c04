// The create step and its undo: a detached jy-stage (native/jy-stage.c) joins the netns made
// by the addresses step, unshares the jail's mount, pid, uts and ipc namespaces and forks
// the jail's pid 1, which mounts /proc (read-only and masked parts from the defaults file),
// sets the hostname, pivot_roots, binds the guest folder, installs the seccomp filter, drops
// the capabilities (security.ts: both from allow.*) and execs tini. jy-stage joins the jail's
// cgroups before anything else, so every process of the jail is charged to them from its
// first instruction.
import { spawn, type ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { stateTag } from './paths.ts';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
} from 'node:fs';
import { paramString } from '../../conf/spec.ts';
import { JailyardError } from '../../errors.ts';
import type { CreateFacts, JailContext, Limits, MountFacts, NetworkFacts } from '../driver.ts';
import { loadDefaults } from '../../defaults.ts';
import { jailSecurity, kernelFsArgs, kernelFsTypes, procArgs, procRules } from './security.ts';
import { JY_GUEST_TOOLS, JY_STAGE, checkNative, isStageProcess } from './native.ts';
import { heldNamespace, type HeldNamespace } from './mountns.ts';
import { spawner } from './spawner.ts';
import { consoleLimitOf, stageConsole } from './console.ts';
import { minimalEnv } from './host-env.ts';
import { nestedRoot } from './mounts.ts';
import { parentUserNamespace, rangeArg, rangeFor, usernsWanted } from './userns.ts';
import { applyLimits, createGroups, removeGroups, warmCgroupMoves, type CgroupConfig } from './cgroups.ts';
import { childrenOf, killTree, nsIdsOf, pidAlive, pidsInNamespace, run, startTimeOf, waitFor } from './proc.ts';
import { GUEST_TARGET } from '../../layout.ts';
import { stagePtysArgs } from './ptys.ts';

export interface LifeConfig {
  cgroups: CgroupConfig;
  /** Static tini on the host, bound read-only into every jail as /.jailyard/tini. */
  tini: string;
  /** What pid 1 (tini) keeps running while the jail lives. */
  holder: string[];
  /** A static program on the host bound at /.jailyard/hold (holder then names that path). */
  holderBin?: string;
  /** How long the stage may take to become ready. */
  readyTimeoutMs: number;
}

/** Lines as they come: push chunks, end at EOF; next() waits for a line (undefined: ended). */
function lineQueue(): {
  push: (chunk: Buffer | string) => void;
  end: () => void;
  next: () => Promise<string | undefined>;
} {
  const lines: string[] = [];
  let ended = false;
  let waiter: (() => void) | undefined;
  let buf = '';
  const decoder = new StringDecoder('utf8');
  return {
    push(chunk) {
      buf += typeof chunk === 'string' ? chunk : decoder.write(chunk);
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      waiter?.();
    },
    end() {
      ended = true;
      waiter?.();
    },
    async next() {
      while (!lines.length && !ended) await new Promise<void>((r) => (waiter = r));
      return lines.shift();
    },
  };
}

/** jy-stage running: its pid (undefined if it could not start), its stdout's lines, and
 * detach(), which stops reading them and lets it live on without us. */
interface StageProcess {
  pid: number | undefined;
  nextLine: () => Promise<string | undefined>;
  detach: () => void;
}

/** Starts jy-stage in a session of its own (so it outlives jailyard and no terminal signal
 * reaches it), stdout to us, stderr appended to the console log. */
async function startStage(argv: string[], log: string, logLimit?: number): Promise<StageProcess> {
  const lines = lineQueue();
  const helper = spawner();
  if (helper) {
    const child = helper.spawn({
      argv,
      env: minimalEnv(),
      cwd: '/',
      detached: true,
      stdout: 'pipe',
      stderr: { file: await stageConsole(log, logLimit) },
    });
    child.on('stdout', lines.push);
    child.on('exit', lines.end);
    child.on('error', lines.end);
    const pid = await child.started.catch(() => undefined);
    if (pid === undefined) lines.end();
    return {
      pid,
      nextLine: lines.next,
      detach: () => {
        child.removeAllListeners();
        child.closeOutput();
      },
    };
  }
  const logFd = openSync(await stageConsole(log, logLimit), 'a');
  const child: ChildProcess = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['ignore', 'pipe', logFd],
    env: minimalEnv(),
    cwd: '/',
  });
  closeSync(logFd);
  child.stdout!.on('data', lines.push);
  child.stdout!.on('close', lines.end);
  child.on('exit', lines.end);
  child.on('error', lines.end);
  return {
    pid: child.pid,
    nextLine: lines.next,
    detach: () => {
      child.stdout!.destroy();
      child.unref();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)))]).finally(() =>
    clearTimeout(t),
  );
}

function logTail(file: string, from: number): string {
  try {
    return readFileSync(file, 'utf8').slice(from).trim().slice(-4000);
  } catch {
    return '';
  }
}

function hasDev(root: string, fs: (p: string) => string): boolean {
  try {
    return lstatSync(fs(`${root}/dev/null`)).isCharacterDevice();
  } catch {
    return false;
  }
}

/** Where the guest folder (the jail's env and guest socket) appears inside the jail. */
export { GUEST_TARGET };

/** jail, jls and sysctl for the jail itself (native/jy-guest.c) at /run/jailyard/bin, after
 * the guest bind: its mount point is made in the guest folder here, the jail sees it
 * read-only. The tools' folder holds nothing else; it is read-only, nosuid and nodev. */
function toolsBind(guest: string): string[] {
  if (!existsSync(JY_GUEST_TOOLS)) return [];
  mkdirSync(`${guest}/bin`, { recursive: true, mode: 0o755 });
  return ['--bind-rx', JY_GUEST_TOOLS, `${GUEST_TARGET}/bin`];
}

export async function create(
  ctx: JailContext,
  net: NetworkFacts,
  limits: Limits,
  cfg: LifeConfig,
  mounts?: MountFacts,
): Promise<CreateFacts> {
  const place = { jail: ctx.name, step: 'create' };
  mkdirSync(ctx.stateDir, { recursive: true });
  const log = `${ctx.stateDir}/console.log`;
  let logStart = 0;
  try {
    logStart = statSync(log).size;
  } catch {
    // new log
  }
  const hostname = paramString(ctx.spec.params, 'host.hostname') || ctx.name;
  const nest = ctx.parent ? nestedStart(ctx, ctx.parent) : undefined;
  const root = nest?.root ?? ctx.path;
  const fs = nest?.ns.view.fs ?? ((p: string) => p);
  // Mount points the stage needs, made here to spare it processes. /proc and /.jailyard are
  // the stage's names in every jail root, which the jail owns: anything there but a real
  // directory (a symlink to send a mount or the exec elsewhere) is moved aside, never
  // followed; so is a /.jailyard/tini that is not a regular file. jy-stage checks again.
  const ownDir = (name: string, ok: (p: string) => boolean = () => true): string => {
    const at = `${root}/${name}`;
    const st = lstatSync(fs(at), { throwIfNoEntry: false });
    if (st && (!st.isDirectory() || !ok(at))) renameSync(fs(at), fs(`${root}/${name}.moved-${Date.now()}`));
    mkdirSync(fs(at), { recursive: true });
    return at;
  };
  ownDir('proc');
  // the guest folder's mount point: /run first, so that run/jailyard is looked up in a real
  // directory of the jail's own and never through a symlink the jail put at /run
  ownDir('run');
  ownDir('run/jailyard');
  const bound = cfg.holderBin ? ['tini', 'hold'] : ['tini'];
  const own = ownDir('.jailyard', (at) =>
    bound.every((f) => lstatSync(fs(`${at}/${f}`), { throwIfNoEntry: false })?.isFile() !== false),
  );
  for (const f of bound) if (!existsSync(fs(`${own}/${f}`))) closeSync(openSync(fs(`${own}/${f}`), 'a'));
  checkNative();
  // before anything is made: a bad limits.consolelog fails the step with nothing to undo
  const logLimit = consoleLimitOf(ctx.spec.params, ctx.name);
  const cgroups = await createGroups(
    cgroupConfigFor(ctx, cfg.cgroups),
    ctx.jid,
    ctx.name,
    limits,
    stateTag(ctx.stateDir),
    ctx.parent?.cgroups,
  );
  // The grace period a cgroup move waits for starts now, after the groups are made (making
  // them waits on the same lock) and runs while jy-stage is spawned (docs/benchmarks.md).
  warmCgroupMoves();

  const joins = nest
    ? // Into the parent's pid, net, uts and ipc namespaces (so the child's pid namespace is
      // nested in the parent's and it shares the parent's addresses), and into the private
      // mount namespace holding the child's mounts (host programs only, see mountns.ts).
      [
        ...(['ipc', 'uts', 'net', 'pid'] as const).flatMap((t) => [
          '--join',
          t,
          `/proc/${ctx.parent!.initPid}/ns/${t}`,
        ]),
        '--join',
        'mnt',
        nest.ns.nsFile,
      ]
    : net.netns
      ? ['--join', 'net', `/run/netns/${net.netns}`]
      : ['--unshare-net'];
  const security = jailSecurity(ctx.spec);
  // The guest folder is bound in the jail's own mount namespace only: in the host's view a
  // local user could otherwise reach the guest socket below the jail's root.
  const guest = `${ctx.stateDir}/guest`;
  // user-namespace jail: the range recorded by the mounts step (taken now if it was not)
  const range = usernsWanted(ctx.spec) && !nest ? await rangeFor(ctx) : undefined;
  // a child of a user-namespace jail enters its parent's namespace: a child is never more
  // than its parent (in the host's namespace its root would be host root)
  const joinedUser = nest ? parentUserNamespace(ctx.parent!.initPid, place) : undefined;
  const argv = [
    JY_STAGE,
    ...cgroups.flatMap((d) => ['--cgroup', d]),
    ...joins,
    ...(range ? ['--userns', rangeArg(range)] : []),
    ...(joinedUser ? ['--join-user', joinedUser.file, String(joinedUser.base)] : []),
    ...procArgs(procRules(loadDefaults())),
    ...kernelFsArgs(kernelFsTypes(loadDefaults())),
    ...(mounts?.suid ?? []).flatMap((t) => ['--suid', t]),
    ...(existsSync(guest) ? ['--bind-ro', guest, GUEST_TARGET, ...toolsBind(guest)] : []),
    '--seccomp',
    security.seccomp,
    ...(cfg.holderBin ? ['--holder', cfg.holderBin] : []),
    ...stagePtysArgs(ctx.spec.params),
    root,
    hostname,
    cfg.tini,
    security.keepCaps,
    hasDev(root, fs) ? 'keepdev' : 'makedev',
    '--',
    ...cfg.holder,
  ];
  const stage = await startStage(argv, log, logLimit);
  const failed = async (what: string, extra = ''): Promise<never> => {
    if (stage.pid) killTree(stage.pid, 'SIGKILL');
    if (stage.pid) await waitFor(() => !pidAlive(stage.pid!), 2000);
    await removeGroups(cgroups, ctx.name).catch(() => {});
    const output = [extra, logTail(log, logStart)].filter(Boolean).join('\n');
    throw new JailyardError('JY_ERR_PLATFORM', `cannot create the jail: ${what}`, { ...place, output });
  };
  if (!stage.pid) return failed('cannot spawn jy-stage');
  const holderPid = stage.pid;

  const first = await withTimeout(stage.nextLine(), cfg.readyTimeoutMs);
  if (first !== 'ready')
    return failed(first === 'timeout' ? 'the stage did not get ready in time' : 'the stage failed');
  // joining a pid namespace forks once more: for a nested jail the chain is three processes.
  const between = nest ? childrenOf(holderPid)[0] : undefined;
  const initPid = childrenOf(between ?? holderPid)[0];
  if (!initPid) return failed('no pid 1 below jy-stage');
  // "ready" comes right before the exec: pid 1 is up once it runs tini.
  const isTini = () => {
    try {
      return readFileSync(`/proc/${initPid}/comm`, 'utf8').trim() === 'tini';
    } catch {
      return false;
    }
  };
  if (!(await waitFor(isTini, cfg.readyTimeoutMs, 1))) return failed('pid 1 did not become tini');
  stage.detach();
  // The child copied the prepared mount namespace: the copy held for it is done.
  await nest?.ns.release();
  const startTime = startTimeOf(initPid);
  return {
    initPid,
    holderPid,
    nsIds: nsIdsOf(initPid),
    cgroups,
    ...(startTime ? { startTime } : {}),
    rootUid: range?.base ?? joinedUser?.base ?? 0,
  };
}

/** What creating a nested jail needs: its parent alive and the namespace its mounts are in. */
function nestedStart(ctx: JailContext, parent: CreateFacts): { ns: HeldNamespace; root: string } {
  const place = { jail: ctx.name, step: 'create' };
  if (!isAlive(parent)) throw new JailyardError('JY_ERR_PLATFORM', 'the parent jail is not running', place);
  const ns = heldNamespace(ctx.stateDir);
  if (!ns)
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      'no prepared mount namespace: the mounts step of a nested jail must run in the same process',
      place,
    );
  return { ns, root: nestedRoot(ctx.stateDir) };
}

export function isAlive(facts: CreateFacts): boolean {
  if (!pidAlive(facts.initPid)) return false;
  if (facts.startTime !== undefined && startTimeOf(facts.initPid) !== facts.startTime) return false;
  if (facts.nsIds?.pid) {
    try {
      return readlinkSync(`/proc/${facts.initPid}/ns/pid`) === facts.nsIds.pid;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * jail -r: SIGTERM every process of the jail except pid 1 and its holder child, wait up to
 * timeoutMs for them to go, then SIGKILL pid 1 (the kernel kills whatever is left in the
 * pid namespace). Killing tini's child first would make tini exit at once and the kernel
 * SIGKILL the rest without a grace period.
 */
export async function destroy(ctx: JailContext, facts: CreateFacts, timeoutMs: number): Promise<void> {
  if (isAlive(facts)) {
    const pidNs = facts.nsIds?.pid ?? readlinkSync(`/proc/${facts.initPid}/ns/pid`);
    const holder = holderChild(facts.initPid);
    const others = () => pidsInNamespace(pidNs).filter((p) => p !== facts.initPid && p !== holder);
    const first = others();
    for (const p of first) {
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
    }
    if (first.length) await waitFor(() => others().every((p) => !pidAlive(p)), timeoutMs, 20);
    try {
      process.kill(facts.initPid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    // The kernel reaps every process of the namespace before its pid 1 counts as exited;
    // jy-stage (the holder) waits for pid 1 and exits then: its exit means all are gone.
    if (facts.holderPid === undefined || !isHolder(facts.holderPid))
      await waitFor(() => pidsInNamespace(pidNs).every((p) => !pidAlive(p)), 5000, 5);
  }
  if (facts.holderPid !== undefined)
    await waitFor(() => !pidAlive(facts.holderPid!) || !isHolder(facts.holderPid!), 5000, 1);
  await removeGroups(facts.cgroups, ctx.name);
}

/** jail(8)'s test for a non-persistent jail: it has no process of its own left, only its
 * pid 1 (tini) and the holder (a child jail's processes are in a pid namespace of their own). */
export function isIdle(facts: CreateFacts): boolean {
  if (!facts.nsIds?.pid || !isAlive(facts)) return false;
  const holder = holderChild(facts.initPid);
  return pidsInNamespace(facts.nsIds.pid).every((p) => p === facts.initPid || p === holder || !pidAlive(p));
}

/** tini's own child (the holder): the oldest of its children, the rest are adopted orphans. */
function holderChild(initPid: number): number | undefined {
  const kids = childrenOf(initPid).map((p) => ({ p, t: Number(startTimeOf(p) ?? Infinity) }));
  kids.sort((a, b) => a.t - b.t || a.p - b.p);
  return kids[0]?.p;
}

function isHolder(pid: number): boolean {
  return isStageProcess(pid);
}

export async function modify(
  ctx: JailContext,
  facts: CreateFacts,
  changes: { hostname?: string; limits?: Limits },
): Promise<void> {
  if (changes.limits) await applyLimits(facts.cgroups, changes.limits, ctx.name);
  if (changes.hostname !== undefined) {
    const r = await run(['nsenter', `--target=${facts.initPid}`, '--uts', '--', 'hostname', '--', changes.hostname]);
    if (r.code !== 0) {
      throw new JailyardError('JY_ERR_PLATFORM', `cannot set hostname ${changes.hostname}`, {
        jail: ctx.name,
        param: 'host.hostname',
        output: r.stderr.trim(),
      });
    }
  }
}

/** The jail's `limits.cgroup_parent` (a relative group path) overrides the driver's parent. */
function cgroupConfigFor(ctx: JailContext, base: CgroupConfig): CgroupConfig {
  const param = paramString(ctx.spec.params, 'limits.cgroup_parent');
  if (!param) return base;
  const parts = param.split('/');
  if (parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p) || p === '.' || p === '..')) {
    throw new JailyardError('JY_ERR_PARAM_VALUE', `not a relative cgroup path: ${JSON.stringify(param)}`, {
      jail: ctx.name,
      param: 'limits.cgroup_parent',
      step: 'create',
    });
  }
  return { ...base, parent: param };
}
