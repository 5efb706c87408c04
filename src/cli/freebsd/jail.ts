// jail(8): create (-c), modify (-m), remove (-r, -R), their combinations (-cm, -rc), from
// the command line (param=value ...) or from jail.conf (-f), with FreeBSD's messages
// ("NAME: created", "NAME: removed", `jail: "x" not found`), error texts and exit codes
// (usr.sbin/jail/jail.c, command.c). jail(8) has no defined but stopped jail: -c creates
// and starts, and a failed -c leaves nothing; -r stops and forgets.

import { existsSync, writeFileSync } from 'node:fs';
import { isCommandWord, parseParamAssignment } from '../../conf/params.ts';
import type { Params, ParamValue } from '../../conf/spec.ts';
import { JailyardError } from '../../errors.ts';
import type { MetaOp } from '../../meta/ops.ts';
import { IMMUTABLE_WHILE_RUNNING } from '../../runtime/service.ts';
import type { BatchOptions } from '../../runtime/types.ts';
import type { JailRecord } from '../../store/types.ts';
import { getopt, GetoptError } from './getopt.ts';
import type { FrontIO, FrontScope } from './types.ts';
import { findJail, hostName, inScope, isJid, shownName, visibleJails } from './scope.ts';

const USAGE = `usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username]
            -[cmr] param=value ... [command=command ...]
       jail [-dqv] [-f file] -[cmr] [jail]
       jail [-qv] [-f file] -[rR] ['*' | jail ...]
       jail [-dhilqv] [-J jid_file] [-u username] [-U username]
            [-n jailname] [-s securelevel]
            path hostname [ip[,...]] command ...
       jail [-f file] -e separator
`;

const CONF_FILE = '/etc/jail.conf';

/** Ends the command with an exit code (after what it printed). */
class Exit extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

/** One jail as the command line or a jail.conf block describes it. */
interface Wanted {
  /** The name jail(8) prints ("NAME: created"): the jail.conf block, or undefined for a
   * jail given on the command line (jail(8) prints its notes without a name then). */
  label: string | undefined;
  /** The jail's name relative to the caller; undefined: named after its jid. */
  name: string | undefined;
  jid: number | undefined;
  params: Params;
  meta: MetaOp[];
  env: MetaOp[];
}

interface Flags {
  create: boolean;
  set: boolean;
  remove: boolean;
  /** -R: remove without the jail's stop commands... */
  removeAll: boolean;
  /** -q: -1, -v: 1, else 0 (jail.c's `verbose`) */
  verbose: number;
  iflag: boolean;
  confFile: string;
  jidFile: string | undefined;
  sep: string | undefined;
  /** Words the options add as parameters (-n, -s, -u, -U, -l). */
  optionParams: string[];
}

export async function jailMain(argv: string[], io: FrontIO, scope: FrontScope): Promise<number> {
  try {
    return await run(argv, io, scope);
  } catch (e) {
    if (e instanceof Exit) return e.code;
    if (e instanceof GetoptError) {
      io.stderr(`${e.message}\n${USAGE}`);
      return 1;
    }
    io.stderr(`jail: ${errorText(e)}\n`);
    return 1;
  }
}

function usage(io: FrontIO): never {
  io.stderr(USAGE);
  throw new Exit(1);
}

/** An error as jail(8) would word it (libjail's jail_errmsg, the kernel's opterror). */
function errorText(e: unknown): string {
  if (!(e instanceof JailyardError)) return e instanceof Error ? e.message : String(e);
  const param = e.place.param;
  // jail.conf errors as config.c words them: file:line: message
  if (e.place.pos) return `${e.place.pos.file}:${e.place.pos.line}: ${e.message}`;
  if (e.code === 'JY_ERR_PARAM_UNKNOWN' && param) return `unknown parameter: ${param}`;
  if (
    e.code === 'JY_ERR_PARAM_VALUE' &&
    param &&
    IMMUTABLE_WHILE_RUNNING.has(param) &&
    /cannot be changed/.test(e.message)
  )
    return `${param} cannot be changed after creation`;
  return e.message;
}

function parseFlags(argv: string[], io: FrontIO): { flags: Flags; rest: string[] } {
  const { opts, rest } = getopt('jail', argv, 'cde:f:hiJ:lmn:p:qrRs:u:U:v');
  const flags: Flags = {
    create: false,
    set: false,
    remove: false,
    removeAll: false,
    verbose: 0,
    iflag: false,
    confFile: CONF_FILE,
    jidFile: undefined,
    sep: undefined,
    optionParams: [],
  };
  for (const [letter, arg] of opts) {
    switch (letter) {
      case 'c':
        flags.create = true;
        break;
      case 'm':
        flags.set = true;
        break;
      case 'r':
        flags.remove = true;
        break;
      case 'R':
        flags.remove = true;
        flags.removeAll = true;
        break;
      case 'q':
        flags.verbose = -1;
        break;
      case 'v':
        flags.verbose = 1;
        break;
      case 'i':
        flags.iflag = true;
        flags.verbose = -1;
        break;
      case 'f':
        flags.confFile = arg as string;
        break;
      case 'J':
        flags.jidFile = arg as string;
        break;
      case 'e':
        flags.sep = arg as string;
        break;
      case 'n':
        flags.optionParams.push(`name=${arg}`);
        break;
      case 's':
        flags.optionParams.push(`securelevel=${arg}`);
        break;
      case 'u':
        flags.optionParams.push(`exec.jail_user=${arg}`, 'exec.system_jail_user');
        break;
      case 'U':
        flags.optionParams.push(`exec.jail_user=${arg}`, 'exec.system_jail_user=false');
        break;
      case 'l':
        flags.optionParams.push('exec.clean');
        break;
      case 'd': // allow.dying: a jailyard jail is never left dying
      case 'h': // ip_hostname: addresses are given explicitly
      case 'p': // parallel limit: jails are handled one after the other
        break;
      default:
        usage(io);
    }
  }
  return { flags, rest };
}

async function run(argv: string[], io: FrontIO, scope: FrontScope): Promise<number> {
  const { flags, rest } = parseFlags(argv, io);
  if (flags.sep !== undefined) return exhibit(io, flags);
  const op = { c: flags.create, m: flags.set, r: flags.remove };
  if (!op.c && !op.m && !op.r) return oldStyle(rest, io, scope, flags);

  if (op.r && !op.c && !op.m) {
    // jail -r / -R: jails by name, jid or '*', perhaps defined in the config file
    if (flags.optionParams.length || rest.length === 0) usage(io);
    if (!flags.removeAll && rest.some((w) => w.includes('='))) usage(io);
    const docf = !flags.removeAll && (flags.confFile === '-' || existsSync(flags.confFile));
    const noteRemove = docf || rest.length > 1 || rest.some((w) => w.includes('*'));
    let error = 0;
    for (const word of rest) {
      if (!(await removeNamed(word, io, scope, flags, noteRemove))) error = 1;
    }
    return error;
  }

  let wanted: Wanted[];
  if (rest.length > 1 || (rest.length === 1 && rest[0]!.includes('='))) {
    if (flags.removeAll) usage(io);
    wanted = [commandLineJail([...flags.optionParams, ...rest])];
  } else {
    if (flags.removeAll || flags.optionParams.length) usage(io);
    wanted = await confJails(flags.confFile, rest[0]);
  }
  let error = 0;
  for (const w of wanted) {
    try {
      await apply(w, io, scope, flags);
    } catch (e) {
      if (e instanceof Exit) {
        error = e.code || error;
        continue;
      }
      io.stderr(`jail: ${w.label !== undefined ? `${w.label}: ` : ''}${errorText(e)}\n`);
      error = 1;
    }
  }
  return error;
}

/** The words of a single jail on the command line (jail.c: command= takes the rest;
 * ip4.addr= and ip6.addr= add to the list, other parameters replace). */
function commandLineJail(words: string[]): Wanted {
  const w: Wanted = { label: undefined, name: undefined, jid: undefined, params: {}, meta: [], env: [] };
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (isCommandWord(word)) {
      const command = [...(word[7] === '=' ? [word.slice(8)] : []), ...words.slice(i + 1)];
      if (command.length) w.params.command = [command.map(shellWord).join(' ')];
      break;
    }
    addWord(w, word);
  }
  return w;
}

function addWord(w: Wanted, word: string): void {
  const a = parseParamAssignment(word, w.name);
  if (a.kind === 'meta') {
    w[a.param].push(a.op);
    return;
  }
  if (a.name === 'name') w.name = String(a.value);
  else if (a.name === 'jid') w.jid = Number(a.value);
  else if ((a.name === 'ip4.addr' || a.name === 'ip6.addr') && Array.isArray(a.value)) {
    const before = w.params[a.name];
    w.params[a.name] = [...(Array.isArray(before) ? before : []), ...a.value.filter((x) => x !== '')];
  } else w.params[a.name] = a.value;
}

/** A word of `command=` as sh reads it back: the hook runs a command line through sh when it
 * has shell characters, so each word is quoted unless it is plain. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The jails of a jail.conf: all (but wildcard blocks), or the one `select` names (its block
 * name, its name parameter or its jid). */
async function confJails(file: string, select: string | undefined): Promise<Wanted[]> {
  if (file !== '-' && !existsSync(file)) throw new Error(`${file}: No such file or directory`);
  // the jail.conf parser only for the forms that read one
  const { loadConf } = await import('../../conf/evaluate.ts');
  const specs = loadConf(file === '-' ? '/dev/stdin' : file);
  const out: Wanted[] = [];
  for (const spec of specs) {
    // the block's name: a numeric block that sets `name` is still addressed by its number
    const label = spec.block ?? spec.name;
    if (label.includes('*')) continue;
    const { name: _name, jid, meta, env, ...params } = spec.params;
    if (select !== undefined && select !== '*' && label !== select && spec.name !== select) continue;
    out.push({
      label,
      name: spec.name,
      jid: jid !== undefined ? Number(jid) : undefined,
      params,
      meta: meta !== undefined ? [{ op: 'replace', value: String(meta) }] : [],
      env: env !== undefined ? [{ op: 'replace', value: String(env) }] : [],
    });
  }
  if (select !== undefined && select !== '*' && out.length === 0) {
    // jail(8): a jail the config file does not define is taken as named on the command line
    out.push({
      label: select,
      name: isJid(select) ? undefined : select,
      jid: isJid(select) ? Number(select) : undefined,
      params: {},
      meta: [],
      env: [],
    });
  }
  return out;
}

/** The running jail a wanted jail is (by jid when given, else by name). */
async function existing(w: Wanted, scope: FrontScope): Promise<JailRecord | undefined> {
  const jails = await visibleJails(scope);
  if (w.jid !== undefined) {
    const j = jails.find((x) => x.jid === w.jid);
    if (j) return j;
    if (w.name === undefined) return undefined;
  }
  if (w.name === undefined) return undefined;
  const host = hostName(scope, w.name);
  return jails.find((x) => x.name === host);
}

/** jail(8) passes the output of the exec.* commands to its own stdout and stderr (the
 * runtime's BatchOptions.hookOutput). */
function withHooks(io: FrontIO): BatchOptions & {
  hookOutput?: (jail: string, stream: 'stdout' | 'stderr', text: string) => void;
} {
  return { hookOutput: (_jail, stream, text) => io[stream](text) };
}

function note(io: FrontIO, label: string | undefined, text: string): void {
  io.stdout(label !== undefined ? `${label}: ${text}\n` : `${text}\n`);
}

function warn(io: FrontIO, label: string | undefined, text: string): void {
  io.stderr(label !== undefined ? `jail: ${label}: ${text}\n` : `jail: ${text}\n`);
}

/** jail_quoted_warnx: `"NAME" not found` (the block, the jid or the name). */
function quotedWarn(io: FrontIO, w: Wanted, what: string, noname: string): void {
  const who = w.label ?? (w.jid !== undefined ? String(w.jid) : w.name);
  io.stderr(who !== undefined ? `jail: "${who}" ${what}\n` : `jail: ${noname}\n`);
}

async function apply(w: Wanted, io: FrontIO, scope: FrontScope, flags: Flags): Promise<void> {
  const found = await existing(w, scope);
  const { create, set, remove } = { create: flags.create, set: flags.set, remove: flags.remove };
  if (create && !set && !remove) {
    if (found) {
      quotedWarn(io, w, 'already exists', 'already exists');
      throw new Exit(1);
    }
    return await createAndStart(w, io, scope, flags);
  }
  if (set && !create && !remove) {
    if (!found) {
      quotedWarn(io, w, 'not found', 'no jail specified');
      throw new Exit(1);
    }
    return await modify(found, w, io, scope, flags);
  }
  if (create && set && !remove) {
    return found ? await modify(found, w, io, scope, flags) : await createAndStart(w, io, scope, flags);
  }
  // -rc: restart; -rm: modify, restart when a create-only parameter changes; -rcm: either
  if (!found) {
    if (!create) {
      quotedWarn(io, w, 'not found', 'no jail specified');
      throw new Exit(1);
    }
    return await createAndStart(w, io, scope, flags);
  }
  if (set && !changesFixed(found, w)) return await modify(found, w, io, scope, flags);
  await removeJail(found, w.label, io, scope, flags.verbose > 0 || (flags.verbose === 0 && w.label !== undefined));
  await createAndStart({ ...w, name: w.name ?? shownName(scope, found.name) }, io, scope, flags);
}

/** Whether `w` changes a parameter a running jail keeps (jail.c rdtun_params). */
function changesFixed(j: JailRecord, w: Wanted): boolean {
  return Object.entries(w.params).some(
    ([k, v]) => IMMUTABLE_WHILE_RUNNING.has(k) && JSON.stringify(j.params[k]) !== JSON.stringify(v),
  );
}

async function modify(j: JailRecord, w: Wanted, io: FrontIO, scope: FrontScope, flags: Flags): Promise<void> {
  try {
    await scope.service.modify(j.name, { params: w.params, meta: w.meta, env: w.env });
  } catch (e) {
    warn(io, w.label, errorText(e));
    throw new Exit(1);
  }
  if (flags.verbose > 0 || (flags.verbose === 0 && w.label !== undefined)) note(io, w.label, 'updated');
}

/** The first number that is neither a running jail's jid nor a jail's name: what the kernel
 * names a jail created without a name. */
async function freeJidName(scope: FrontScope): Promise<string> {
  const all = await scope.service.list();
  const used = new Set(all.flatMap((j) => [String(j.jid), j.name]));
  let n = 1;
  while (used.has(String(n)) || used.has(hostName(scope, String(n)))) n++;
  return String(n);
}

/**
 * The kernel's rules for a new child jail, checked before anything is written: a caller
 * inside a jail whose children.max is 0 may not create jails (jail_set: EPERM); every
 * ancestor's children.max bounds its descendant records, whatever their state ("prison limit
 * exceeded"; a record of the new jail's own name is counted already). A service scoped
 * to the caller (the in-jail tools, src/api/guest-tools.ts) shows neither the caller's own
 * record nor those above it: that side checks them before the front runs.
 */
async function checkChildLimits(host: string, scope: FrontScope): Promise<void> {
  const all = await scope.service.list();
  const byName = new Map(all.map((j) => [j.name, j]));
  const maxOf = (j: JailRecord): number => Number(j.params['children.max'] ?? 0) || 0;
  const own = scope.root ? byName.get(scope.root) : undefined;
  if (own && maxOf(own) === 0) throw new JailyardError('JY_ERR_PARAM_VALUE', 'jail_set: Operation not permitted');
  for (let dot = host.lastIndexOf('.'); dot > 0; dot = host.lastIndexOf('.', dot - 1)) {
    const ancestorName = host.slice(0, dot);
    const ancestor = byName.get(ancestorName);
    if (!ancestor || ancestor.state === 'stopped') {
      if (!inScope(scope, ancestorName) || ancestorName === scope.root) continue;
      throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail "${shownName(scope, ancestorName)}" not found`);
    }
    const below = all.filter((j) => j.name.startsWith(`${ancestorName}.`) && j.name !== host).length;
    if (below >= maxOf(ancestor)) throw new JailyardError('JY_ERR_PARAM_VALUE', 'prison limit exceeded');
  }
}

async function createAndStart(w: Wanted, io: FrontIO, scope: FrontScope, flags: Flags): Promise<void> {
  // a jail without a name is named by its jid (the kernel's rule): the first free number
  const jid = w.jid ?? (w.name === undefined ? Number(await freeJidName(scope)) : undefined);
  const name = w.name ?? String(jid);
  const host = hostName(scope, name);
  try {
    await checkChildLimits(host, scope);
    // a jail without persist that went away (its last process ended) is gone in jail(8):
    // jailyard keeps its record stopped until someone forgets it
    const gone = (await scope.service.list()).find((j) => j.name === host && j.state === 'stopped');
    if (gone?.runtime?.died) await scope.service.remove([host]);
    const params: Params = { name: host, ...(jid !== undefined ? { jid } : {}), ...w.params };
    await scope.service.create({ spec: { name: host, params }, meta: w.meta, env: w.env });
  } catch (e) {
    warn(io, w.label, errorText(e));
    throw new Exit(1);
  }
  const result = await scope.service.start([host], withHooks(io));
  const failed = result.outcomes.filter((o) => o.status !== 'ok');
  if (failed.length) {
    for (const o of failed) warn(io, w.label, o.message ?? o.status);
    // jail(8) leaves nothing of a jail whose creation failed
    await scope.service.remove([host], withHooks(io)).catch(() => undefined);
    throw new Exit(1);
  }
  let j = await scope.service.get(host).catch(() => undefined);
  if (j?.state === 'stopped') {
    // a jail without persist whose command has ended is gone, as in jail(8)
    await scope.service.remove([host]).catch(() => undefined);
    j = undefined;
  }
  if (flags.iflag && j) io.stdout(`${j.jid}\n`);
  if (flags.verbose > 0 || (flags.verbose === 0 && w.label !== undefined)) note(io, w.label, 'created');
  if (flags.jidFile && j) writeJidFile(flags.jidFile, j, scope);
}

/** -J: the jail's parameters as jail(8) prints them (jid=N name=value ...). */
function writeJidFile(file: string, j: JailRecord, scope: FrontScope): void {
  const words = [`jid=${j.jid}`, `name=${quoted(shownName(scope, j.name))}`];
  for (const [k, v] of Object.entries(j.params)) {
    if (k === 'name' || k === 'jid') continue;
    words.push(v === true ? k : `${k}=${Array.isArray(v) ? v.map(quoted).join(',') : quoted(String(v))}`);
  }
  writeFileSync(file, `${words.join(' ')}\n`, { mode: 0o644 });
}

/** jail.c quoted_print: "" for empty, quotes around spaces and quotes, backslashes. */
export function quoted(value: string): string {
  const qc = value === '' || value.includes("'") ? '"' : value.includes('"') ? "'" : /[ \t]/.test(value) ? '"' : '';
  let out = '';
  for (const c of value) out += c === '\\' || (qc && c === qc) ? `\\${c}` : c;
  return `${qc}${out}${qc}`;
}

async function removeJail(
  j: JailRecord,
  label: string | undefined,
  io: FrontIO,
  scope: FrontScope,
  noteRemove: boolean,
): Promise<boolean> {
  const result = await scope.service.remove([j.name], withHooks(io));
  const failed = result.outcomes.filter((o) => o.status !== 'ok');
  for (const o of failed) warn(io, label ?? shownName(scope, o.name), o.message ?? o.status);
  if (failed.length) return false;
  if (noteRemove) note(io, label, 'removed');
  return true;
}

async function removeNamed(
  word: string,
  io: FrontIO,
  scope: FrontScope,
  flags: Flags,
  noteRemove: boolean,
): Promise<boolean> {
  const shown = flags.verbose > 0 || (flags.verbose === 0 && noteRemove);
  if (word.includes('*')) {
    // a wildcard: every visible jail it matches, children before parents
    const re = new RegExp(`^${word.split('*').map(escapeRe).join('[^.]*')}$`);
    const jails = (await visibleJails(scope))
      .filter((j) => re.test(shownName(scope, j.name)))
      .sort((a, b) => b.name.split('.').length - a.name.split('.').length);
    let ok = true;
    for (const j of jails) {
      const still = (await scope.service.list()).find((x) => x.name === j.name);
      if (still && !(await removeJail(still, shownName(scope, j.name), io, scope, shown))) ok = false;
    }
    return ok;
  }
  const j = await findJail(scope, word);
  if (!j || !inScope(scope, j.name)) {
    if (flags.verbose >= 0) io.stderr(`jail: "${word}" not found\n`);
    return false;
  }
  return await removeJail(j, word, io, scope, shown);
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** jail path hostname [ip[,...]] command ...: the jail runs command and is gone after it. */
async function oldStyle(rest: string[], io: FrontIO, scope: FrontScope, flags: Flags): Promise<number> {
  if (rest.length < 4 || !rest[0]!.startsWith('/')) usage(io);
  const [path, hostname, ips, ...command] = rest as [string, string, string, ...string[]];
  const w = commandLineJail([
    ...flags.optionParams,
    `path=${path}`,
    `host.hostname=${hostname}`,
    ...ips
      .split(',')
      .filter(Boolean)
      .map((a) => (a.includes(':') ? `ip6.addr=${a}` : `ip4.addr=${a}`)),
    'command',
    ...command,
  ]);
  try {
    await createAndStart(w, io, scope, flags);
  } catch (e) {
    if (e instanceof Exit) return e.code;
    throw e;
  }
  return 0;
}

/** -e SEP: every configured jail (not wildcard blocks) on one line, parameters separated by
 * SEP; nothing is created, changed or removed. */
async function exhibit(io: FrontIO, flags: Flags): Promise<number> {
  const { loadConf } = await import('../../conf/evaluate.ts');
  for (const spec of loadConf(flags.confFile)) {
    if (spec.name.includes('*')) continue;
    const words: string[] = [];
    for (const [k, v] of Object.entries(spec.params)) words.push(paramWord(k, v));
    io.stdout(`${words.join(flags.sep)}\n`);
  }
  return 0;
}

function paramWord(k: string, v: ParamValue): string {
  if (v === true) return k;
  if (v === false)
    return k.includes('.') ? `${k.slice(0, k.lastIndexOf('.'))}.no${k.slice(k.lastIndexOf('.') + 1)}` : `no${k}`;
  return `${k}=${Array.isArray(v) ? v.map(quoted).join(',') : quoted(String(v))}`;
}
