// jailyard conf — check, show, format a jail.conf; import legacy rc.conf jail_* variables.
// See docs/jail-conf.md.
import { JailyardError } from '../../errors.ts';
import { loadConf, readConfFile } from '../../conf/evaluate.ts';
import { printConf, printParamLine } from '../../conf/printer.ts';
import { importRcConf } from '../../conf/rcconf.ts';
import type { JailSpec, Params } from '../../conf/spec.ts';
import type { RegisterVerb } from '../context.ts';

function pick(specs: JailSpec[], names: string[], file: string): JailSpec[] {
  if (names.length === 0) return specs;
  const missing = names.filter((n) => !specs.some((s) => s.name === n));
  if (missing.length)
    throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `not defined in ${file}: ${missing.join(', ')}`, {
      jail: missing[0] as string,
    });
  return names.map((n) => specs.find((s) => s.name === n) as JailSpec);
}

export const register: RegisterVerb = (program, io) => {
  const conf = program
    .command('conf')
    .description('check, show and format jail.conf(5) files; import rc.conf jail_* variables');

  conf
    .command('check')
    .description('parse and evaluate FILE; exit 1 with the first error')
    .argument('<file>', 'jail.conf file')
    .action((file: string) => {
      const specs = loadConf(file);
      io.out(
        `${file}: ok, ${specs.length} jail${specs.length === 1 ? '' : 's'}${specs.length ? `: ${specs.map((s) => s.name).join(', ')}` : ''}`,
      );
    });

  conf
    .command('show')
    .description('print the resolved parameters of every jail (or of the named ones)')
    .argument('<file>', 'jail.conf file')
    .argument('[jail...]', 'only these jails')
    .option('--json', 'one JSON document: {"jails": {"NAME": {"param": value, ...}}}')
    .action((file: string, names: string[], o: { json?: boolean }) => {
      const specs = pick(loadConf(file), names, file);
      if (o.json) {
        const jails: Record<string, Params> = {};
        for (const s of specs) jails[s.name] = s.params;
        io.out(JSON.stringify({ jails }));
        return;
      }
      const lines: string[] = [];
      for (const s of specs) for (const [k, v] of Object.entries(s.params)) lines.push(printParamLine(s.name, k, v));
      if (lines.length) io.out(lines.join('\n'));
    });

  conf
    .command('fmt')
    .description('print FILE in canonical form (wildcards, variables and includes resolved)')
    .argument('<file>', 'jail.conf file')
    .action((file: string) => {
      const text = printConf(loadConf(file));
      if (text) io.out(text);
    });

  conf
    .command('import-rc')
    .description('print the jail.conf equivalent of the jail_* variables of an rc.conf')
    .argument('<file>', 'rc.conf file')
    .action((file: string) => {
      io.out(importRcConf(readConfFile(file), file));
    });
};
