// jailyard sysctl — see docs/cli.md#sysctl and docs/metadata.md.
// Reads and sets the host-wide settings the way sysctl(8) does:
//   jailyard sysctl                          every setting, "name: value"
//   jailyard sysctl meta_maxbufsize          one setting
//   jailyard sysctl meta_maxbufsize=8192     set (root only): "name: old -> new"
// FreeBSD's names (security.jail.meta_maxbufsize) are accepted too.
import { JailyardError } from '../../errors.ts';
import { openStore } from '../../store/sqlite.ts';
import { checkSetting, describeSetting, isSettingName, SETTING_NAMES } from '../../store/settings.ts';
import type { Settings } from '../../store/types.ts';
import { stateDir, type RegisterVerb } from '../context.ts';

const FREEBSD_PREFIX = 'security.jail.';

function settingName(word: string): keyof Settings {
  const name = word.startsWith(FREEBSD_PREFIX) ? word.slice(FREEBSD_PREFIX.length) : word;
  if (!isSettingName(name)) {
    throw new JailyardError('JY_ERR_PARAM_UNKNOWN', `unknown setting "${word}" (known: ${SETTING_NAMES.join(', ')})`, {
      param: word,
    });
  }
  return name;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('sysctl')
    .description('show or set host-wide settings (meta_maxbufsize, meta_hierarchical, event_history), like sysctl(8)')
    .argument('[name[=value]...]', 'settings to show, or to set (root only)')
    .option('-n', 'print only the values')
    .option('-d', 'print the descriptions instead of the values')
    .option('--json', 'one JSON document: {"name": value, ...}')
    .action((args: string[], o: { n?: boolean; d?: boolean; json?: boolean }) => {
      // parse and check every word before touching the store
      const wanted = args.map((w) => {
        const eq = w.indexOf('=');
        if (eq < 0) return { name: settingName(w), value: undefined };
        const name = settingName(w.slice(0, eq));
        return { name, value: checkSetting(name, w.slice(eq + 1)) };
      });
      if (wanted.some((w) => w.value !== undefined) && process.getuid?.() !== 0) {
        throw new JailyardError('JY_ERR_NOT_ROOT', 'setting a sysctl needs root', {
          param: wanted.find((w) => w.value !== undefined)!.name,
        });
      }
      const store = openStore(stateDir(program));
      try {
        const list = wanted.length ? wanted : SETTING_NAMES.map((name) => ({ name, value: undefined }));
        const lines: string[] = [];
        const doc: Record<string, number | string> = {};
        for (const w of list) {
          const old = store.getSettings()[w.name];
          if (w.value !== undefined) store.setSetting(w.name, w.value);
          const now = store.getSettings()[w.name];
          doc[w.name] = o.d ? describeSetting(w.name) : now;
          if (o.d) lines.push(o.n ? describeSetting(w.name) : `${w.name}: ${describeSetting(w.name)}`);
          else if (o.n) lines.push(String(now));
          else lines.push(w.value !== undefined ? `${w.name}: ${old} -> ${now}` : `${w.name}: ${now}`);
        }
        io.out(o.json ? JSON.stringify(doc) : lines.join('\n'));
      } finally {
        store.close();
      }
    });
};
