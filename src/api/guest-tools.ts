// The host side of the jail(8) and jls(8) a jail runs inside itself (native/jy-guest.c, at
// /run/jailyard/bin in every jail), and of its sysctl's jail-tree names
// (security.jail.children.max and .cur). Two servers answer them with the code here: the
// daemon's guest socket (guest.ts, POST /tools/jail, /tools/jls, /tools/sysctl) and, without a daemon,
// the host's jexec for the command it runs (openToolsChannel: a socket in the jail's guest
// folder, named to the command by JAILYARD_TOOLS_SOCKET).
//
// Everything a jail sends is hostile. Who asks is the jail whose socket was reached, never
// anything in the request. The request is bounded (body size, argument count, requests at
// once per jail); options that make the host read or write a file of its own (-f, -J) or run
// as a user of its own (-u, -U) are refused; the front acts through a service that sees
// and touches the caller's descendants only (scopedService), never shows meta, and takes
// only parameters that cannot widen the parent: its own addresses, a children.max not
// above the parent's, commands that run inside the child, a path inside the parent's root.
// Host-side hooks (exec.prestart, exec.poststart, ...), mounts, vnet, allow.*, limits,
// skeletons and every other parameter are refused the way jail(8) reports a refused
// jail_set: "jail: jail_set: PARAM: Operation not permitted". The commands a jail gives a
// child (exec.start, command, exec.stop) run with a host-given exec.timeout, so none of them
// holds the host's start or stop of the child, or of its parent, for longer.

import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { isCommandWord } from '../conf/params.ts';
import { paramInt, paramList, paramString, type Params } from '../conf/spec.ts';
import { isJailyardError, JailyardError } from '../errors.ts';
import { addressesOf, contextFromRecords, parentName } from '../runtime/jailplan.ts';
import type { JailService } from '../runtime/types.ts';
import { validateJailName } from '../store/names.ts';
import type { CreateFacts, JailChange, JailRecord, Store } from '../store/types.ts';
import { capConnections, guardHandler, TokenBucket } from './limits.ts';
import { type PeerCheck, peerInJail, peerIsRoot } from './peer.ts';
import { GUEST_TARGET } from '../layout.ts';
import { pinnedEntry } from '../skeleton/pinned.ts';
import { hideHostPaths, hostPathMap } from './tool-paths.ts';

/** The environment variable that names the jexec channel inside the jail. */
export const TOOLS_SOCKET_ENV = 'JAILYARD_TOOLS_SOCKET';

export type ToolName = 'jail' | 'jls' | 'sysctl';
export const TOOL_NAMES: readonly ToolName[] = ['jail', 'jls', 'sysctl'];

/** What a front command writes to (the shape of src/cli/freebsd's FrontIO). */
export interface ToolIO {
  stdout(text: string): void;
  stderr(text: string): void;
}
/** Whom it acts for (src/cli/freebsd's FrontScope): root is the calling jail. */
export interface ToolScope {
  service: JailService;
  root?: string;
}
export type ToolCommand = (argv: string[], io: ToolIO, scope: ToolScope) => Promise<number>;
/** jail(8), jls(8) and the jail-tree sysctls (src/cli/freebsd/index.ts runJail, runJls,
 * runSysctl), handed in by the CLI. */
export interface ToolFront {
  jail: ToolCommand;
  jls: ToolCommand;
  sysctl: ToolCommand;
}

/**
 * Seconds each exec.start, command and exec.stop command of a child a jail made may run.
 * jail(8) has no default exec.timeout, and an operator's own jails keep that: their hooks
 * are the operator's. A child's are the jail's, and its exec.stop runs in the host's stop of
 * the parent: without a bound, `exec.stop="sleep 1000000"` held that stop for good. A
 * command killed at the bound fails its step; a stop goes on (everything is undone, the
 * jail's stop.timeout kill included) and the child is stopped.
 */
export const DEFAULT_CHILD_EXEC_TIMEOUT = 60;

export interface ToolLimits {
  /** Request body bytes (the arguments, NUL-terminated). */
  maxBody: number;
  /** Arguments per request. */
  maxArgs: number;
  /** Bytes of stdout, and of stderr, kept per answer (the rest is cut, with a note). */
  maxOutput: number;
  /** Requests of one jail served at once; more wait. */
  maxRunning: number;
  /** Requests of one jail waiting; more are refused (429). */
  maxWaiting: number;
  /** exec.timeout (seconds) of the commands a jail gives its children (see
   * DEFAULT_CHILD_EXEC_TIMEOUT). */
  childExecTimeout: number;
  /** jail(8) requests of a tree of jails (a top-level jail and its descendants) served at
   * once before the pace below applies (a token bucket). */
  jailBurst: number;
  /** Then one jail(8) request per this many ms; the others wait their turn. Each jail -c, -m
   * or -r writes a child's record: in a cluster a record in etcd's history, in every node's
   * watch ring and to every watcher, as readiness changes (guestReadyIntervalMs). */
  jailIntervalMs: number;
}

export const DEFAULT_TOOL_LIMITS: ToolLimits = {
  maxBody: 256 * 1024,
  maxArgs: 1024,
  maxOutput: 4 * 1024 * 1024,
  maxRunning: 2,
  maxWaiting: 8,
  childExecTimeout: DEFAULT_CHILD_EXEC_TIMEOUT,
  jailBurst: 20,
  jailIntervalMs: 250,
};

export interface ToolAnswer {
  status: number;
  stdout: string;
  stderr: string;
}

/** The answer's body as jy-guest reads it: "STATUS OUTLEN ERRLEN\n", stdout, stderr. */
export function encodeAnswer(a: ToolAnswer): Buffer {
  const out = Buffer.from(a.stdout);
  const err = Buffer.from(a.stderr);
  return Buffer.concat([Buffer.from(`${a.status & 255} ${out.length} ${err.length}\n`), out, err]);
}

/** The arguments of a request body (each followed by a NUL byte), or why it is refused. */
export function decodeArgv(body: Buffer, limits: Pick<ToolLimits, 'maxArgs'> = DEFAULT_TOOL_LIMITS): string[] | string {
  if (body.length === 0) return [];
  if (body[body.length - 1] !== 0) return 'the arguments must each end with a NUL byte';
  const parts = body
    .subarray(0, body.length - 1)
    .toString('latin1')
    .split('\0');
  if (parts.length > limits.maxArgs) return `too many arguments (at most ${limits.maxArgs})`;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    return decoder.decode(body.subarray(0, body.length - 1)).split('\0');
  } catch {
    return 'the arguments are not UTF-8';
  }
}

// ---- what a jail may ask for its children ----

/** Parameters a jail may give a child: none of them reaches beyond the parent. */
const CHILD_PARAMS = new Set([
  'name',
  'persist',
  'nopersist',
  'host.hostname',
  'ip4.addr',
  'ip6.addr',
  'meta',
  'env',
  'children.max',
  'command',
  'exec.start',
  'exec.stop',
  'path',
]);

/** Whether a jail may set parameter `name` (meta.KEY and env.KEY included) on a child. */
export function childParamAllowed(name: string): boolean {
  return CHILD_PARAMS.has(name) || /^(meta|env)\.[^.]/.test(name);
}

/** jail(8)'s report of a jail_set the kernel refused. */
const notPermitted = (what: string): string => `jail: jail_set: ${what}: Operation not permitted\n`;

/** jail(8) options that make the host read or write a file of its own or act as a user. */
const HOST_OPTIONS: Record<string, string> = {
  f: 'a configuration file',
  J: 'a jid file',
  u: 'a user to run commands as',
  U: 'a user to run commands as',
  n: 'the old command line form',
  s: 'the old command line form',
  e: 'the configured jails',
};
/** jail(8) options that take a value. */
const VALUE_OPTIONS = new Set(['f', 'J', 'n', 'p', 's', 'u', 'U', 'e']);

interface JailArgs {
  flags: Set<string>;
  words: string[];
}

/** jail(8)'s options (getopt: clustered, values attached or next) and the words after. */
function parseJailArgs(argv: string[]): JailArgs | string {
  const flags = new Set<string>();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    for (let k = 1; k < a.length; k++) {
      const c = a[k]!;
      if (HOST_OPTIONS[c])
        return `jail: -${c} (${HOST_OPTIONS[c]}) is not available inside a jail: Operation not permitted\n`;
      flags.add(c);
      if (VALUE_OPTIONS.has(c)) {
        if (k === a.length - 1) i++;
        break;
      }
    }
  }
  return { flags, words: argv.slice(i) };
}

/** The parameter name of a command line word ("ip4.addr+=x" -> "ip4.addr"). */
function wordParam(word: string): string {
  const eq = word.indexOf('=');
  const name = eq < 0 ? word : word.slice(0, eq);
  return name.endsWith('+') ? name.slice(0, -1) : name;
}

/** The host names of the caller's ancestors-to-be of `child` (nearest first), the caller last. */
function chainTo(caller: string, child: string): string[] {
  const chain: string[] = [];
  for (let n = parentName(child); n !== undefined && n.length >= caller.length; n = parentName(n)) {
    chain.push(n);
    if (n === caller) break;
  }
  return chain;
}

const isDescendant = (caller: string, name: string): boolean => name.startsWith(`${caller}.`);

/**
 * The checks made before jail(8)'s front sees a jail's arguments: options acting on host
 * files, the configuration file form, parameters outside the allow-list, and the kernel's
 * own rules for a caller creating a child (children.max 0: no jail_set at all; the
 * limit reached at any ancestor: "prison limit exceeded"). The limit counts every descendant
 * record whatever its state: a FreeBSD jail that stops is gone, a jailyard record stays (its
 * name, its store rows, its folder), so counting running ones only let a jail pile up
 * stopped children without bound. children.cur counts the same (runtime/params.ts
 * withDerived). Returns jail(8)'s stderr text, or undefined when the front may run.
 */
export async function checkJailArgv(argv: string[], caller: string, service: JailService): Promise<string | undefined> {
  const parsed = parseJailArgs(argv);
  if (typeof parsed === 'string') return parsed;
  const { flags, words } = parsed;
  const sets = flags.has('c') || flags.has('m');
  if (!sets) {
    // -r/-R jail...: names, which the scoped service resolves among the caller's descendants
    const bad = words.find((w) => w.includes('/') || w.includes('\0'));
    return bad === undefined ? undefined : `jail: "${bad}" not found\n`;
  }
  if (!(words.length > 1 || words[0]?.includes('='))) {
    // the front's (and jail.c's) test for the jail.conf form: `jail -c [NAME]` reads
    // jail.conf, the host's, which is not the jail's to use
    return 'jail: a configuration file (jail -c NAME) is not available inside a jail: Operation not permitted\n';
  }
  let name: string | undefined;
  for (const w of words) {
    const p = wordParam(w);
    // the rest is the command's own arguments, by the front's own rule (`command+=x` is not
    // that word: the front reads the words after it as parameters, so they are checked)
    if (isCommandWord(w)) break;
    if (!childParamAllowed(p)) return notPermitted(p);
    if (p === 'name') name = w.slice(w.indexOf('=') + 1);
  }
  const self = await service.get(caller);
  if ((paramInt(self.params, 'children.max') ?? 0) <= 0) return 'jail: jail_set: Operation not permitted\n';
  if (flags.has('c') && name) {
    const child = `${caller}.${name}`;
    const all = await service.list();
    const byName = new Map(all.map((r) => [r.name, r]));
    // a record of that name is counted already: the front says it exists, or takes the place
    // of a child that went away by itself (and the start checks the running ones)
    if (byName.has(child)) return undefined;
    for (const a of chainTo(caller, child)) {
      const rec = byName.get(a);
      if (!rec) continue; // the front reports the missing parent
      const max = paramInt(rec.params, 'children.max') ?? 0;
      const records = all.filter((r) => isDescendant(a, r.name)).length;
      if (records >= max) return 'jail: prison limit exceeded\n';
    }
  }
  return undefined;
}

// ---- the service the front acts through ----

function refused(jail: string, param: string, why: string): JailyardError {
  return new JailyardError('JY_ERR_PARAM_VALUE', `jail_set: ${param}: Operation not permitted (${why})`, {
    jail,
    param,
  });
}

export interface ScopeOptions {
  /** A jail's root on the host, to check a child's `path` (without it, `path` is refused). */
  rootOf?: (name: string) => string | undefined;
  /** The exec.timeout (seconds) a child gets with commands of the jail's (default
   * DEFAULT_CHILD_EXEC_TIMEOUT). */
  execTimeout?: number;
  /** The state folder: its paths in an answer are hidden from the jail (tool-paths.ts). */
  stateDir?: string;
}

/** The parameters that hold commands a jail gives its child (run inside the child). */
const CHILD_COMMANDS = ['exec.start', 'command', 'exec.stop'];

/** The most bytes a child's parameters may take (their JSON, as the record holds them), when
 * a jail sets them: the size of meta's buffer (meta and env have their own bound). Every
 * change is a whole record written to the store, and in a cluster to etcd, which keeps each
 * revision until compaction (settings event_history): a jail rewriting a child with a
 * 256 KiB exec.start filled etcd at ~20 MB/s, and etcd's quota stops the whole cluster. */
export const CHILD_PARAMS_MAX_BYTES = 4096;

/** ScopeOptions.rootOf from a local store. */
export function rootsFrom(stateDir: string, store: Pick<Store, 'getJail'>): (name: string) => string | undefined {
  return (name) => {
    const record = store.getJail(name);
    if (!record) return undefined;
    try {
      return contextFromRecords(stateDir, record, (n) => store.getJail(n)).path;
    } catch {
      return undefined;
    }
  };
}

/** The creates of each tree of jails under way, per service (see scopedService's create). */
const creating = new WeakMap<JailService, Map<string, Promise<unknown>>>();

/** Runs `f` after every create of the same tree of jails through `inner` has ended. */
async function oneAtATime<T>(inner: JailService, tree: string, f: () => Promise<T>): Promise<T> {
  let trees = creating.get(inner);
  if (!trees) {
    trees = new Map();
    creating.set(inner, trees);
  }
  const before = trees.get(tree) ?? Promise.resolve();
  const run = before.catch(() => {}).then(f);
  const settled = run.catch(() => {});
  trees.set(tree, settled);
  void settled.then(() => {
    if (trees.get(tree) === settled) trees.delete(tree);
  });
  return run;
}

/**
 * `inner` as the jail `caller` may use it: its strict descendants only (any other name is
 * "not found", whether it exists or not), never their meta, and only parameters that
 * cannot widen the child's parent (checked against the parent's record at each call).
 */
export function scopedService(inner: JailService, caller: string, opts: ScopeOptions = {}): JailService {
  const notFound = (name: string): JailyardError =>
    new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${name}" not found`, { jail: name });
  const mine = (name: string): void => {
    if (!isDescendant(caller, name)) throw notFound(name);
  };
  const hide = (r: JailRecord): JailRecord => ({ ...r, meta: '' });

  /** `all`: the child's parameters as they would be after the change. */
  const checkSize = (name: string, all: Params, set: Params): void => {
    const size = Buffer.byteLength(JSON.stringify(all));
    if (size <= CHILD_PARAMS_MAX_BYTES) return;
    // the largest value set names the parameter
    const [p] = Object.entries(set).sort(
      (a, b) => Buffer.byteLength(JSON.stringify(b[1])) - Buffer.byteLength(JSON.stringify(a[1])),
    )[0] ?? ['name'];
    throw refused(
      name,
      p,
      `the child's parameters would take ${size} bytes, more than the ${CHILD_PARAMS_MAX_BYTES} a jail may give its child`,
    );
  };
  const checkParams = async (name: string, params: Params): Promise<void> => {
    const parentOfChild = parentName(name)!;
    const parent = await inner.get(parentOfChild);
    for (const [p, value] of Object.entries(params)) {
      if (!childParamAllowed(p)) throw refused(name, p, 'not a parameter a jail may give its child');
      if (p === 'children.max') {
        const max = paramInt(params, p) ?? 0;
        const limit = paramInt(parent.params, p) ?? 0;
        if (max > limit) throw refused(name, p, `above the parent's ${limit}`);
      }
      if (p === 'path' && value !== false) checkPath(name, parentOfChild, paramString(params, 'path') ?? '');
    }
    // an interface ("eth0|addr") would be configured on the host's side: the child shares
    // its parent's network and takes none
    for (const p of ['ip4.addr', 'ip6.addr'])
      if (paramList(params, p).some((a) => a.includes('|'))) throw refused(name, p, 'a child takes no interface');
    const own = new Set(addressesOf(parent).map((a) => a.address));
    for (const { address: a } of addressesOf({ params })) {
      if (!own.has(a)) throw refused(name, a.includes(':') ? 'ip6.addr' : 'ip4.addr', `${a} is not the parent's`);
    }
  };
  // The child's root is inside the parent's (layout.ts joins them); the parent owns its
  // tree, so no part of the path may be a symlink that would lead elsewhere.
  const checkPath = (name: string, parentName: string, path: string): void => {
    const root = opts.rootOf?.(parentName);
    if (!root) throw refused(name, 'path', 'a child of a jail takes no path here');
    if (!isAbsolute(path)) throw refused(name, 'path', 'not absolute');
    let at = root;
    for (const part of normalize(path).split('/').filter(Boolean)) {
      at = join(at, part);
      const st = lstatSync(at, { throwIfNoEntry: false });
      if (!st?.isDirectory()) throw refused(name, 'path', `${path} is not a directory of the parent's`);
    }
  };
  const checkChange = async (name: string, change: JailChange): Promise<void> => {
    if (change.params) await checkParams(name, change.params);
    for (const p of change.unset ?? []) if (!childParamAllowed(p)) throw refused(name, p, 'not a jail parameter');
  };
  // exec.timeout is not the jail's to give (not in CHILD_PARAMS): a child whose commands are
  // the jail's gets the host's bound unless it has one already (an operator's)
  const timeout = String(opts.execTimeout ?? DEFAULT_CHILD_EXEC_TIMEOUT);
  const bounded = (params: Params, has: Params = {}): Params =>
    params['exec.timeout'] === undefined &&
    has['exec.timeout'] === undefined &&
    CHILD_COMMANDS.some((p) => params[p] !== undefined && params[p] !== false)
      ? { ...params, 'exec.timeout': timeout }
      : params;

  return {
    async list(filter) {
      return (await inner.list(filter)).filter((r) => isDescendant(caller, r.name)).map(hide);
    },
    async get(name) {
      mine(name);
      return hide(await inner.get(name));
    },
    async create(input) {
      mine(input.spec.name);
      validateJailName(input.spec.name);
      checkSize(input.spec.name, input.spec.params, input.spec.params);
      await checkParams(input.spec.name, input.spec.params);
      // children.max counts records: checked again here, one create of the tree at a time,
      // since checkJailArgv's count and the front's create are apart (another request of the
      // tree may create between them; in a cluster an etcd round trip apart)
      const child = input.spec.name;
      return oneAtATime(inner, child.split('.')[0]!, async () => {
        const all = await inner.list();
        if (!all.some((r) => r.name === child)) {
          for (const a of chainTo(caller, child)) {
            const rec = all.find((r) => r.name === a);
            if (!rec) continue;
            const max = paramInt(rec.params, 'children.max') ?? 0;
            if (all.filter((r) => isDescendant(a, r.name)).length >= max)
              throw new JailyardError('JY_ERR_PARAM_VALUE', `prison limit exceeded (children.max=${max} of "${a}")`, {
                jail: child,
                param: 'children.max',
              });
          }
        }
        return hide(await inner.create({ ...input, spec: { ...input.spec, params: bounded(input.spec.params) } }));
      });
    },
    async modify(name, change, wopts) {
      mine(name);
      await checkChange(name, change);
      const have = (await inner.get(name)).params;
      if (change.params && Object.keys(change.params).length) {
        const all: Params = { ...have };
        for (const k of change.unset ?? []) delete all[k];
        checkSize(name, Object.assign(all, change.params), change.params);
      }
      const params = change.params && bounded(change.params, have);
      return hide(await inner.modify(name, params ? { ...change, params } : change, wopts));
    },
    async start(names, bopts) {
      names.forEach(mine);
      return inner.start(names, bopts);
    },
    async stop(names, bopts) {
      names.forEach(mine);
      return inner.stop(names, bopts);
    },
    async restart(names, bopts) {
      names.forEach(mine);
      return inner.restart(names, bopts);
    },
    async remove(names, bopts) {
      names.forEach(mine);
      return inner.remove(names, bopts);
    },
  };
}

// ---- running a request ----

/** Room past maxOutput kept until the host paths are hidden, so that a path the limit would
 * cut in two is whole when it is looked at (longer than PATH_MAX). */
const PATH_SLACK = 8192;

/** Collects a stream's text up to `max` bytes (+ PATH_SLACK); `text(show)` gives it with
 * `show` applied, cut to `max`. */
function collector(max: number): { write(text: string): void; text(show: (t: string) => string): string } {
  const parts: string[] = [];
  let size = 0;
  let cut = false;
  return {
    write(text) {
      if (cut) return;
      const n = Buffer.byteLength(text);
      if (size + n > max + PATH_SLACK) {
        parts.push(
          Buffer.from(text)
            .subarray(0, max + PATH_SLACK - size)
            .toString(),
        );
        cut = true;
        return;
      }
      parts.push(text);
      size += n;
    },
    text(show) {
      let all = parts.join('');
      if (cut) all = all.replace(/\S*$/, ''); // the word the slack cut may be a piece of a path
      all = show(all);
      const bytes = Buffer.from(all);
      if (!cut && bytes.length <= max) return all;
      return `${bytes.subarray(0, max).toString()}\n[jailyard: output cut]\n`;
    },
  };
}

export interface ToolContext {
  front: ToolFront;
  /** The host's service (unscoped: scopedService wraps it per request). */
  service: JailService;
  limits?: Partial<ToolLimits>;
  scope?: ScopeOptions;
}

/** Runs `tool` with `argv` for the jail `caller`: the checks, then the front. */
export async function runTool(ctx: ToolContext, tool: ToolName, argv: string[], caller: string): Promise<ToolAnswer> {
  const limits = { ...DEFAULT_TOOL_LIMITS, ...ctx.limits };
  const out = collector(limits.maxOutput);
  const err = collector(limits.maxOutput);
  let status: number;
  try {
    const refusal = tool === 'jail' ? await checkJailArgv(argv, caller, ctx.service) : undefined;
    if (refusal) return { status: 1, stdout: '', stderr: refusal };
    // the sysctls count the caller's own jail and its descendants (two numbers, nothing else
    // of any record is shown): the caller's own record is not in the scoped view
    const service =
      tool === 'sysctl'
        ? ctx.service
        : scopedService(ctx.service, caller, { execTimeout: limits.childExecTimeout, ...ctx.scope });
    status = await ctx.front[tool](argv, { stdout: out.write, stderr: err.write }, { service, root: caller });
  } catch (e) {
    err.write(`${tool}: ${isJailyardError(e) ? e.message : 'internal error'}\n`);
    status = 1;
  }
  const show = await pathsShown(ctx, caller);
  return { status, stdout: out.text(show), stderr: err.text(show) };
}

/** How host paths in an answer to `caller` are shown (tool-paths.ts), the jail's
 * descendants read after the front ran (a child it just made is one). */
async function pathsShown(ctx: ToolContext, caller: string): Promise<(text: string) => string> {
  let descendants: string[] = [];
  try {
    descendants = (await ctx.service.list()).map((r) => r.name).filter((n) => isDescendant(caller, n));
  } catch {
    // without the list the children's paths are hidden, not shown: still no host path
  }
  const map = hostPathMap({
    caller,
    descendants,
    ...(ctx.scope?.rootOf ? { rootOf: ctx.scope.rootOf } : {}),
    ...(ctx.scope?.stateDir ? { stateDir: ctx.scope.stateDir } : {}),
  });
  return (text) => hideHostPaths(text, map);
}

function reply(res: ServerResponse, status: number, body: string | Buffer, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** What a refused request may still send before it is answered (see refuse). */
const DRAIN_BYTES = 1 << 20;
const DRAIN_MS = 2000;

/**
 * Answers `status`, and the connection closes after the answer. The client may still be
 * sending the body it declared (jy-guest sends the whole request, then reads), and Node
 * closes a `connection: close` socket once the answer is out: closing a unix socket with
 * data unread resets the peer, which then cannot read the answer. So a body of at most
 * DRAIN_BYTES is read and dropped first (bounded by DRAIN_MS too); a longer one is
 * answered at once (it could not be helped, and is not read).
 */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, text: string): void {
  res.setHeader('connection', 'close');
  let timer: NodeJS.Timeout | undefined;
  const answer = () => {
    clearTimeout(timer);
    if (!res.headersSent) reply(res, status, text);
  };
  const declared = Number(req.headers['content-length'] ?? 0);
  if (!(declared <= DRAIN_BYTES) || req.readableEnded) {
    answer();
    return;
  }
  let seen = 0;
  timer = setTimeout(answer, DRAIN_MS);
  timer.unref();
  req.on('data', (c: Buffer) => {
    seen += c.length;
    if (seen > DRAIN_BYTES) answer();
  });
  req.once('end', answer);
  req.resume();
}

/** The request's body, at most `max` bytes; undefined (and a 413 sent) when it is longer. */
function readBody(req: IncomingMessage, res: ServerResponse, max: number): Promise<Buffer | undefined> {
  const tooLong = `the arguments are longer than ${max} bytes\n`;
  if (Number(req.headers['content-length'] ?? 0) > max) {
    refuse(req, res, 413, tooLong);
    return Promise.resolve(undefined);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size > max) return;
      size += c.length;
      if (size > max) {
        req.pause();
        refuse(req, res, 413, tooLong);
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(size > max ? undefined : Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
    req.on('close', () => resolve(size > max ? undefined : Buffer.concat(chunks)));
  });
}

/**
 * The tools' HTTP endpoint for any number of jails (the daemon's guest sockets) or one (a
 * jexec channel): POST /tools/jail, POST /tools/jls. The caller is named by the server that
 * accepted the connection. Per jail: maxRunning requests at once, maxWaiting more queued,
 * the rest 429.
 */
export class ToolsEndpoint {
  readonly #ctx: ToolContext;
  readonly #limits: ToolLimits;
  readonly #load = new Map<string, { running: number; waiting: Array<() => void> }>();
  /** The jail(8) budget of each tree of jails: a jail's children have sockets of their own,
   * and with a bucket each a jail could write (1 + children) times as often. */
  readonly #paces = new Map<string, TokenBucket>();

  constructor(ctx: ToolContext) {
    this.#ctx = ctx;
    this.#limits = { ...DEFAULT_TOOL_LIMITS, ...ctx.limits };
  }

  /** Whether `path` is one of the endpoint's routes. */
  static routes(path: string): boolean {
    return path === '/tools/jail' || path === '/tools/jls' || path === '/tools/sysctl';
  }

  async handle(caller: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const tool = path.slice('/tools/'.length) as ToolName;
    if (!ToolsEndpoint.routes(path)) {
      req.resume();
      return reply(res, 404, 'not found: POST /tools/jail, POST /tools/jls, POST /tools/sysctl\n');
    }
    if (req.method !== 'POST') {
      req.resume();
      return reply(res, 405, 'method not allowed\n');
    }
    const body = await readBody(req, res, this.#limits.maxBody);
    if (!body) return;
    const argv = decodeArgv(body, this.#limits);
    if (typeof argv === 'string') return reply(res, 400, `${argv}\n`);
    const release = await this.#enter(caller);
    if (!release) return refuse(req, res, 429, 'too many requests from this jail at once\n');
    try {
      if (tool === 'jail') await this.#pace(caller);
      if (res.destroyed) return;
      const answer = await runTool(this.#ctx, tool, argv, caller);
      reply(res, 200, encodeAnswer(answer), 'application/octet-stream');
    } finally {
      release();
    }
  }

  /** Waits for a token of the caller's tree (held in its slot: the queue behind it is
   * bounded by maxWaiting, the rest refused). */
  async #pace(caller: string): Promise<void> {
    const tree = caller.split('.')[0]!;
    for (;;) {
      const now = Date.now();
      for (const [t, b] of this.#paces) if (b.full(now)) this.#paces.delete(t);
      let bucket = this.#paces.get(tree);
      if (!bucket) {
        bucket = new TokenBucket(this.#limits.jailBurst, this.#limits.jailIntervalMs, now);
        this.#paces.set(tree, bucket);
      }
      if (bucket.take(now)) return;
      await new Promise((r) => setTimeout(r, bucket.waitMs(now)));
    }
  }

  /** A slot for `caller` (waiting for one when all are taken), or undefined when its queue is full. */
  #enter(caller: string): Promise<(() => void) | undefined> {
    let load = this.#load.get(caller);
    if (!load) {
      load = { running: 0, waiting: [] };
      this.#load.set(caller, load);
    }
    const l = load;
    const release = (): void => {
      const next = l.waiting.shift();
      if (next) {
        next();
        return;
      }
      l.running--;
      if (!l.running) this.#load.delete(caller);
    };
    if (l.running < this.#limits.maxRunning) {
      l.running++;
      return Promise.resolve(release);
    }
    if (l.waiting.length >= this.#limits.maxWaiting) return Promise.resolve(undefined);
    return new Promise((resolve) => l.waiting.push(() => resolve(release)));
  }
}

/**
 * The routes that change something: the in-jail jail(8) (jail_set(2) and jail_remove(2) need
 * privilege on FreeBSD) and the jail's readiness (what its load balancer acts on). Only the
 * jail's root may use them; any process of the jail may read its env and list with jls(8).
 */
export function changesSomething(path: string, method: string | undefined): boolean {
  return path === '/tools/jail' || (path === '/ready' && method !== 'GET' && method !== 'HEAD');
}

/**
 * Whether the process at the other end of `req` is the jail's root (peer.ts peerIsRoot), for
 * a route that changes something; when it is not, a 403 is sent (and false returned, as
 * when the socket closed meanwhile). `true` at once when nothing can be checked: the caller
 * then goes on in the same tick, as without the check (a pipelined request behind this one
 * must not be parsed, and perhaps refused with the connection's end, before it is answered).
 */
export function requireJailRoot(
  peers: PeerCheck | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  facts: CreateFacts | undefined,
): true | Promise<boolean> {
  const check = peerIsRoot(peers, req.socket, facts);
  if (check === true) return true;
  return check.then((isRoot) => {
    if (isRoot === undefined) return false;
    if (isRoot) return true;
    res.setHeader('connection', 'close');
    req.resume();
    const path = (req.url ?? '/').split('?')[0]!;
    reply(res, 403, `${path}: only the jail's root may do this: Operation not permitted\n`);
    return false;
  });
}

// ---- jexec's channel ----

export interface ChannelOptions extends ToolContext {
  /** The jail the command runs in (host name). */
  jail: string;
  /** Its guest folder on the host (bound at /run/jailyard inside it). */
  guestDir: string;
  /** Tells who connected; with the jail's namespaces known, only its processes are served. */
  peers?: PeerCheck;
}

export interface ToolsChannel {
  /** For the command's environment: JAILYARD_TOOLS_SOCKET=its path inside the jail. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** Channel sockets of jexec runs that were killed before they could remove them (nobody
 * listens: the connection is refused); those of running jexecs answer and stay. */
async function removeStaleChannels(dir: string): Promise<void> {
  const stale = readdirSync(dir).filter((f) => /^tools-[0-9a-f]{16}\.sock$/.test(f));
  await throughFolder(dir, (at) =>
    Promise.all(
      stale.map(
        (f) =>
          new Promise<void>((resolve) => {
            const s = connect(at(f));
            s.once('connect', () => {
              s.destroy();
              resolve();
            });
            s.once('error', (e: NodeJS.ErrnoException) => {
              if (e.code === 'ECONNREFUSED') rmSync(join(dir, f), { force: true });
              resolve();
            });
          }),
      ),
    ),
  );
}

/**
 * A tools socket for the duration of one command run by the host's jexec: in the jail's
 * guest folder (the host's side: a 0700 state folder; the jail's: its read-only bind), under
 * a random name, answering for `jail` only.
 */
export async function openToolsChannel(opts: ChannelOptions): Promise<ToolsChannel> {
  const name = `tools-${randomBytes(8).toString('hex')}.sock`;
  mkdirSync(opts.guestDir, { recursive: true, mode: 0o755 });
  await removeStaleChannels(opts.guestDir);
  const path = join(opts.guestDir, name);
  const endpoint = new ToolsEndpoint(opts);
  const record = await opts.service.get(opts.jail);
  const ns = record.runtime?.create?.nsIds;
  const handler = guardHandler(
    async (req, res) => {
      const check = peerInJail(opts.peers, req.socket, ns);
      const inside = check === true ? true : await check;
      if (inside === undefined) return;
      if (!inside) {
        res.setHeader('connection', 'close');
        req.resume();
        return reply(res, 403, 'this socket serves the processes of its own jail only\n');
      }
      // jail(8) needs the jail's root (jexec -U runs the command as another user)
      if (changesSomething((req.url ?? '/').split('?')[0]!, req.method)) {
        const root = requireJailRoot(opts.peers, req, res, record.runtime?.create);
        if (root !== true && !(await root)) return;
      }
      return endpoint.handle(opts.jail, req, res);
    },
    () => {},
  );
  const server: Server = createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, handler);
  capConnections(server, { max: 16 });
  await listenJailSocket(server, path);
  server.unref();
  return {
    env: { [TOOLS_SOCKET_ENV]: `${GUEST_TARGET}/${name}` },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(path, { force: true });
    },
  };
}

/** Listens on a unix socket in a jail's guest folder, which the jail's root reaches through a
 * read-only bind: the socket itself must be writable to connect (the folder is the jail's
 * own, so that is the jail's processes and host root). Shared by the daemon's guest sockets
 * and jexec's tools channel. */
export async function listenJailSocket(server: Server, path: string): Promise<void> {
  await throughFolder(
    dirname(path),
    (at) =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(at(basename(path)), () => {
          server.off('error', reject);
          resolve();
        });
      }),
  );
  chmodSync(path, 0o666);
}

/** A unix socket's address holds at most 107 bytes of path (sun_path), and the guest folder
 * of a nested jail in a deep state folder is longer (jexec failed there with EINVAL): sockets
 * in it are bound and reached as /proc/self/fd/N/NAME, N the folder held open for the call. */
async function throughFolder<T>(dir: string, use: (at: (name: string) => string) => Promise<T>): Promise<T> {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    return await use((name) => pinnedEntry(fd, name));
  } finally {
    closeSync(fd);
  }
}
