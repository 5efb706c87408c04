// jailyard recipe — apply a Jailfile's ordered steps to a jail (like Bastille's template and
// AppJail's Makejail), or check one. See docs/cli.md#recipe
import { closeSync, constants, fstatSync, openSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import type { RegisterVerb } from '../context.ts';
import { JailyardError, type SourcePosition } from '../../errors.ts';
import type { RecipeStep } from '../../conf/recipe.ts';

/** FILE, or FILE/Jailfile when FILE is a folder. */
function recipeFile(path: string): string {
  const abs = resolve(path);
  try {
    if (statSync(abs).isDirectory()) return join(abs, 'Jailfile');
  } catch {
    // read below: its error names the file
  }
  return abs;
}

/** --arg name=value (repeatable). */
function collectArg(text: string, acc: Record<string, string>): Record<string, string> {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new JailyardError('JY_ERR_USAGE', `--arg takes NAME=VALUE, not ${JSON.stringify(text)}`);
  return { ...acc, [text.slice(0, eq)]: text.slice(eq + 1) };
}

async function load(file: string, args: Record<string, string>, texts?: Record<string, string>): Promise<RecipeStep[]> {
  const { loadRecipe } = await import('../../conf/recipe.ts');
  return loadRecipe(recipeFile(file), {
    args,
    read: (f) => {
      const text = readFileSync(f, 'utf8');
      if (texts) texts[f] = text;
      return text;
    },
  });
}

/**
 * A CP source: a regular file whose real path is inside the folder of the recipe that names
 * it (a symlink there pointing out of it is refused), read through one descriptor.
 */
function readSource(path: string, pos: SourcePosition): { data: Buffer; mode: number } {
  const folder = realpathSync(dirname(pos.file));
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw new JailyardError('JY_ERR_PATH', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code}`, { pos });
  }
  if (!real.startsWith(folder + sep))
    throw new JailyardError('JY_ERR_PATH', `${path} leads out of the recipe's folder ${folder} (to ${real})`, { pos });
  const fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new JailyardError('JY_ERR_PATH', `${path} is not a regular file`, { pos });
    return { data: readFileSync(fd), mode: st.mode };
  } finally {
    closeSync(fd);
  }
}

export const register: RegisterVerb = (program, io) => {
  const recipe = program
    .command('recipe')
    .description('recipes (Jailfile): ordered steps that make a jail what it should be');

  recipe
    .command('check')
    .description('parse a Jailfile with its INCLUDEs and arguments and print its steps (runs nothing)')
    .argument('<file>', 'the Jailfile, or a folder holding one')
    .option('--arg <name=value>', 'an ARG of the recipe (repeatable)', collectArg, {})
    .option('--json', 'the steps as JSON')
    .action(async (file: string, o: { arg: Record<string, string>; json?: boolean }) => {
      const steps = await load(file, o.arg);
      if (o.json) io.out(JSON.stringify(steps));
      else
        for (const s of steps) {
          const { kind, pos, ...rest } = s;
          io.out(`${pos.file}:${pos.line}:${pos.col} ${kind} ${JSON.stringify(rest)}`);
        }
    });

  recipe
    .command('apply')
    .description('apply a Jailfile to a jail, step by step; stops at the first failing step (its line)')
    .argument('<file>', 'the Jailfile, or a folder holding one')
    .argument('<jail>', 'the jail (started first when a step works inside it)')
    .option('--arg <name=value>', 'an ARG of the recipe (repeatable)', collectArg, {})
    .option('--json', 'print what each step did as JSON')
    .action(async (file: string, jail: string, o: { arg: Record<string, string>; json?: boolean }) => {
      // every error in the recipe (syntax, arguments, INCLUDEs) before anything changes
      const texts: Record<string, string> = {};
      const steps = await load(file, o.arg, texts);
      const { remoteOf } = await import('../portable.ts');
      const remote = remoteOf(program);
      if (remote) {
        // the caller's files go to the daemon as a bundle: the recipe texts it read, and each
        // CP source read here with the same checks as a local apply (its folder, a regular file)
        const sources: Record<string, { mode: number; data: string }> = {};
        for (const s of steps)
          if (s.kind === 'CP' && !sources[s.src]) {
            const src = readSource(s.src, s.pos);
            sources[s.src] = { mode: src.mode & 0o7777, data: src.data.toString('base64') };
          }
        const { applyRecipeRemote } = await import('../../api/recipe-client.ts');
        const report = await applyRecipeRemote(
          remote.host,
          jail,
          { file: recipeFile(file), args: o.arg, recipes: texts, sources },
          { progress: (text) => io.err(text), output: (text) => io.err(text.replace(/\n$/, '')) },
          remote.token ? { token: remote.token } : {},
        );
        if (o.json) io.out(JSON.stringify(report));
        const changed = report.steps.filter((s) => s.result === 'changed').length;
        io.err(`${report.jail}: recipe applied (${changed} changed, ${report.steps.length - changed} unchanged)`);
        return;
      }
      const { withSession } = await import('../jails.ts');
      await withSession(
        program,
        io,
        async ({ service, store, stateDir }) => {
          if (!store) throw new JailyardError('JY_ERR_INTERNAL', 'recipe apply: no local store');
          const { applyRecipe, localJailAccess } = await import('../../runtime/recipe.ts');
          const report = await applyRecipe(jail, steps, {
            service,
            ...(await localJailAccess(stateDir, store)),
            readSource,
            progress: (text) => io.err(text),
            output: (text) => io.err(text.replace(/\n$/, '')),
          });
          if (o.json) io.out(JSON.stringify(report));
          const changed = report.steps.filter((s) => s.result === 'changed').length;
          io.err(`${report.jail}: recipe applied (${changed} changed, ${report.steps.length - changed} unchanged)`);
        },
        { progress: true },
      );
    });
};
