// jailyard sysctl — see docs/cli.md#sysctl and docs/metadata.md.
// Reads and sets the host-wide settings the way sysctl(8) does:
//   jailyard sysctl                          every setting, "name: value"
//   jailyard sysctl meta_maxbufsize          one setting
//   jailyard sysctl meta_maxbufsize=8192     set (root only): "name: old -> new"
// FreeBSD's names (security.jail.meta_maxbufsize) are accepted too, and printed as given.
// FreeBSD's read-only names that scripts about jails read are answered as well:
// security.jail.param.meta / .env, security.jail.env, security.jail.children.max / .cur,
// kern.features.vimage. With
// --pass-unknown (what compat/freebsd/bin/sysctl passes) any other name is handed to the
// system's own sysctl, so a FreeBSD script's `sysctl -n vm.swappiness` still works.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isJailyardError, JailyardError } from '../../errors.ts';
import { openStore } from '../../store/sqlite.ts';
import { checkSetting, describeSetting, isSettingName, SETTING_NAMES } from '../../store/settings.ts';
import type { Settings, Store } from '../../store/types.ts';
import { stateDir, type RegisterVerb } from '../context.ts';
import { JAIL_TREE_OIDS, jailTreeValue } from '../freebsd/sysctl.ts';

const FREEBSD_PREFIX = 'security.jail.';

/** Bytes a meta or env buffer takes in FreeBSD's accounting: the string and its NUL; an
 * empty buffer is no buffer. */
function bufferSize(text: string): number {
  return text === '' ? 0 : Buffer.byteLength(text) + 1;
}

/**
 * FreeBSD's soft limit of security.jail.param.meta and .env (sys/kern/kern_jailmeta.c): it
 * follows meta_maxbufsize up, and stays above it when meta_maxbufsize is lowered while jails
 * exist, so that buffers written under the higher limit can still be read by jls(8). Here it
 * is derived instead of remembered: the hard limit, or the longest meta or env stored if
 * that is longer. It differs from the kernel's only when a raised limit was lowered again
 * before any buffer used it (the kernel keeps announcing the raised size; nothing stored
 * needs it).
 */
function paramBufferSize(store: Store): number {
  let size = store.getSettings().meta_maxbufsize;
  for (const j of store.listJails()) size = Math.max(size, bufferSize(j.meta), bufferSize(j.env));
  return size;
}

/** Read-only names of FreeBSD's that jailyard answers itself. */
interface ReadOnly {
  describe: string;
  read(store: () => Store): string;
}

const FREEBSD_READONLY: Record<string, ReadOnly> = {
  'security.jail.param.meta': {
    describe: 'Jail meta information hidden from the jail (the buffer size jls needs)',
    read: (store) => String(paramBufferSize(store())),
  },
  'security.jail.param.env': {
    describe: 'Jail meta information readable by the jail (the buffer size jls needs)',
    read: (store) => String(paramBufferSize(store())),
  },
  // The host is no jail: it has no env of its own (FreeBSD's prison0 has none either).
  // Inside a jail the jail's own `sysctl` answers with the jail's env.
  'security.jail.env': {
    describe: 'Meta information provided by parent jail',
    read: () => '',
  },
  // FreeBSD scripts read this to decide whether they can make VNET jails, and then make
  // epair(4) interfaces with `ifconfig epair create` (usr.sbin/jail/tests list case). Linux
  // has no epair(4) and its ifconfig cannot make one, so this front answers 0 and those
  // scripts take their own skip path instead of failing half-way. jailyard's jails still
  // get network stacks of their own (vnet, vnet.interface): see docs/freebsd-front.md.
  // prison0's: JAIL_MAX and every existing jail (a jail's own sysctl answers for the jail)
  ...Object.fromEntries(
    Object.entries(JAIL_TREE_OIDS).map(([oid, describe]) => [
      oid,
      { describe, read: (store: () => Store) => String(jailTreeValue(oid, store().listJails())) },
    ]),
  ),
  'kern.features.vimage': {
    describe: 'VImage kernel virtualization (0: no epair(4) on this front)',
    read: () => '0',
  },
};

interface Options {
  n?: boolean;
  q?: boolean;
  d?: boolean;
  json?: boolean;
  passUnknown?: boolean;
}

type Word =
  | { kind: 'setting'; shown: string; name: keyof Settings; value: number | undefined }
  | { kind: 'readonly'; shown: string; entry: ReadOnly; value: string | undefined }
  | { kind: 'system'; shown: string };

function settingName(word: string): keyof Settings | undefined {
  const name = word.startsWith(FREEBSD_PREFIX) ? word.slice(FREEBSD_PREFIX.length) : word;
  return isSettingName(name) ? name : undefined;
}

function unknown(word: string): never {
  throw new JailyardError('JY_ERR_PARAM_UNKNOWN', `unknown setting "${word}" (known: ${SETTING_NAMES.join(', ')})`, {
    param: word,
  });
}

/** The system's own sysctl(8) (procps on Linux). */
function systemSysctl(): string | undefined {
  return ['/usr/sbin/sysctl', '/sbin/sysctl'].find((p) => existsSync(p));
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('sysctl')
    .description('show or set host-wide settings (meta_maxbufsize, meta_hierarchical, event_history), like sysctl(8)')
    .argument('[name[=value]...]', 'settings to show, or to set (root only)')
    .option('-n', 'print only the values')
    .option('-q', 'no warning for a name that is not known (as sysctl(8) -q)')
    .option('-d', 'print the descriptions instead of the values')
    .option('--json', 'one JSON document: {"name": value, ...}')
    .option('--pass-unknown', "hand names jailyard does not know to the system's sysctl (the FreeBSD front)")
    .action((args: string[], o: Options) => {
      try {
        sysctl(args, o);
      } catch (e) {
        // the FreeBSD front speaks as sysctl(8): "sysctl: oid '...' is read only", exit 1
        if (!o.passUnknown || !isJailyardError(e)) throw e;
        io.err(`sysctl: ${e.code === 'JY_ERR_NOT_ROOT' ? `${e.place.param}: Operation not permitted` : e.message}`);
        process.exitCode = 1;
      }
    });

  function sysctl(args: string[], o: Options): void {
    // parse and check every word before touching the store
    const words: Word[] = args.map((w) => {
      const eq = w.indexOf('=');
      const shown = eq < 0 ? w : w.slice(0, eq);
      const name = settingName(shown);
      if (name)
        return { kind: 'setting', shown, name, value: eq < 0 ? undefined : checkSetting(name, w.slice(eq + 1)) };
      const entry = Object.hasOwn(FREEBSD_READONLY, shown) ? FREEBSD_READONLY[shown] : undefined;
      if (entry) return { kind: 'readonly', shown, entry, value: eq < 0 ? undefined : w.slice(eq + 1) };
      if (o.passUnknown && !o.json) return { kind: 'system', shown: w };
      return unknown(shown);
    });
    const ro = words.find((w) => w.kind === 'readonly' && w.value !== undefined);
    if (ro) {
      throw new JailyardError('JY_ERR_PARAM_VALUE', `oid '${ro.shown}' is read only`, { param: ro.shown });
    }
    const setting = words.find((w) => w.kind === 'setting' && w.value !== undefined);
    if (setting && process.getuid?.() !== 0) {
      throw new JailyardError('JY_ERR_NOT_ROOT', 'setting a sysctl needs root', { param: setting.shown });
    }
    let opened: Store | undefined;
    const store = (): Store => {
      opened ??= openStore(stateDir(program));
      return opened;
    };
    try {
      const list: Word[] = words.length
        ? words
        : SETTING_NAMES.map((name) => ({ kind: 'setting', shown: name, name, value: undefined }));
      const lines: string[] = [];
      const doc: Record<string, number | string> = {};
      let failed = false;
      for (const w of list) {
        if (w.kind === 'system') {
          const r = runSystem(w.shown, o);
          if (r.stdout) lines.push(r.stdout.replace(/\n$/, ''));
          if (r.stderr) io.err(r.stderr.replace(/\n$/, ''));
          if (r.status !== 0) failed = true;
          continue;
        }
        const describe = w.kind === 'setting' ? describeSetting(w.name) : w.entry.describe;
        if (o.d) {
          doc[w.shown] = describe;
          lines.push(o.n ? describe : `${w.shown}: ${describe}`);
          continue;
        }
        if (w.kind === 'readonly') {
          const now = w.entry.read(store);
          doc[w.shown] = now;
          lines.push(o.n ? now : `${w.shown}: ${now}`);
          continue;
        }
        const old = store().getSettings()[w.name];
        if (w.value !== undefined) store().setSetting(w.name, w.value);
        const now = store().getSettings()[w.name];
        doc[w.shown] = now;
        const value = w.value !== undefined ? `${old} -> ${now}` : String(now);
        lines.push(o.n ? value : `${w.shown}: ${value}`);
      }
      if (o.json) io.out(JSON.stringify(doc));
      else if (lines.length) io.out(lines.join('\n'));
      if (failed) process.exitCode = 1;
    } finally {
      opened?.close();
    }
  }
};

/** One name through the system's sysctl, with the same -n / -q / -d. */
function runSystem(word: string, o: { n?: boolean; q?: boolean; d?: boolean }) {
  const bin = systemSysctl();
  if (!bin) return { status: 1, stdout: '', stderr: `sysctl: unknown oid '${word.split('=')[0]}'` };
  const flags = [o.n ? '-n' : '', o.q ? '-q' : '', o.d ? '-d' : ''].filter(Boolean);
  const r = spawnSync(bin, [...flags, word], { encoding: 'utf8' });
  return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
