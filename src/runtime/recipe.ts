// Runs a recipe's steps (src/conf/recipe.ts) on one jail, in order, stopping at the first
// that fails with its file:line. Each step is idempotent where it can be: PKG skips what is
// installed, CP and SYSRC leave a file that already has the content, MOUNT, EXPOSE, META,
// ENV and SET leave a value that is already there; RUN always runs (its command decides).
//
// Parameters, meta and env go through the JailService (compare-and-swap, events, as `set`).
// Everything inside the jail runs inside it (its namespaces, root, filter, capabilities)
// through the exec path: the host never writes into the jail's tree, so a symlink the jail
// placed cannot send a host-side write anywhere. The copy made in the jail also refuses a
// symlink on the destination's way and at its name, and replaces the file by renaming.

import { JailyardError, isJailyardError, type SourcePosition } from '../errors.ts';
import type { RecipeStep } from '../conf/recipe.ts';
import { paramList } from '../conf/spec.ts';
import type { ExecResult } from '../platform/driver.ts';
import { loadRunInJail } from '../platform/index.ts';
import type { Store } from '../store/types.ts';
import { contextFromRecords } from './jailplan.ts';
import type { JailService } from './types.ts';

export interface RecipeDeps {
  service: JailService;
  /** Runs argv inside the running jail (stdin: `input`), collecting its output. */
  exec(jail: string, argv: string[], input?: Buffer): Promise<ExecResult>;
  /** A CP source's bytes and mode (a file of the recipe's folder). */
  readSource(path: string, pos: SourcePosition): { data: Buffer; mode: number };
  /** The jail's root on the host: a `mount` line names its target there (jail(8)). */
  rootOf(jail: string): Promise<string>;
  /** One line per step ("Jailfile:3 CP index.html /srv/www/index.html: changed"). */
  progress(text: string): void;
  /** A RUN command's output, as it printed it. */
  output(text: string): void;
  /** Stops the recipe before its next step (the API's client went away). */
  signal?: AbortSignal;
}

/** A recipe's view of the jails of one local store: `exec` in a running jail (the driver's
 * exec path, stdin `input`) and `rootOf`; what the local verb and the API route both use. */
export async function localJailAccess(stateDir: string, store: Store): Promise<Pick<RecipeDeps, 'exec' | 'rootOf'>> {
  const runInJail = await loadRunInJail({ stateDir });
  const context = (name: string) => contextFromRecords(stateDir, store.requireJail(name), (n) => store.getJail(n));
  return {
    exec: async (name, argv, input) => {
      const j = store.requireJail(name);
      if (j.state !== 'running' || !j.runtime?.create)
        throw new JailyardError('JY_ERR_INVALID_TRANSITION', `jail is ${j.state}, not running`, { jail: name });
      return runInJail(context(name), j.runtime.create, argv, { stdio: 'pipe', ...(input ? { input } : {}) });
    },
    rootOf: async (name) => context(name).path,
  };
}

export type StepResult = 'changed' | 'unchanged';

export interface RecipeReport {
  jail: string;
  started: boolean;
  steps: { place: string; kind: RecipeStep['kind']; result: StepResult }[];
}

/** What a script in the jail prints when it changed nothing. */
const UNCHANGED = 'jailyard: unchanged';

const PKG_SCRIPT = `missing=
for p in "$@"; do
  # installed as dpkg says, or (no dpkg database: a skeleton of the host's root keeps none)
  # a command of that name on the PATH
  dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    { [ ! -s /var/lib/dpkg/status ] && command -v "$p" >/dev/null 2>&1; } || missing="$missing $p"
done
[ -n "$missing" ] || { echo '${UNCHANGED}'; exit 0; }
command -v apt-get >/dev/null 2>&1 || { echo "no apt-get in the jail to install:$missing" >&2; exit 127; }
# names checked by the recipe parser: split on blanks on purpose
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing`;

/** $1 destination, $2 octal mode; the bytes on stdin. */
const CP_SCRIPT = `set -f
dst=$1 mode=$2 d=\${1%/*}
p=
IFS=/
for c in $d; do
  [ -n "$c" ] || continue
  p=$p/$c
  if [ -L "$p" ]; then echo "$p is a symbolic link: not followed" >&2; exit 1; fi
done
unset IFS
mkdir -p "\${d:-/}" || exit 1
if [ -L "$dst" ]; then echo "$dst is a symbolic link: not followed" >&2; exit 1; fi
if [ -d "$dst" ]; then echo "$dst is a directory" >&2; exit 1; fi
tmp="$dst.jailyard-cp.$$"
cat > "$tmp" || { rm -f "$tmp"; exit 1; }
chmod "$mode" "$tmp"
if [ -f "$dst" ] && command -v cmp >/dev/null 2>&1 && cmp -s "$tmp" "$dst" && [ "$(stat -c %a "$dst")" = "$(stat -c %a "$tmp")" ]; then
  rm -f "$tmp"; echo '${UNCHANGED}'; exit 0
fi
mv -f "$tmp" "$dst"`;

/** $1 file, $2 key, $3 the whole line key="value". */
const SYSRC_SCRIPT = `f=$1 k=$2 line=$3
if [ -L "$f" ]; then echo "$f is a symbolic link: not followed" >&2; exit 1; fi
d=\${f%/*}
mkdir -p "\${d:-/}" || exit 1
[ -e "$f" ] || : > "$f" || exit 1
tmp="$f.jailyard-sysrc.$$"
awk -v k="$k" -v line="$line" 'index($0, k "=") == 1 { if (!done) print line; done = 1; next } { print } END { if (!done) print line }' "$f" > "$tmp" || { rm -f "$tmp"; exit 1; }
if cmp -s "$tmp" "$f"; then rm -f "$tmp"; echo '${UNCHANGED}'; exit 0; fi
cat "$tmp" > "$f" && rm -f "$tmp"`;

/** A `mount` line (fstab(5): blanks in a field as \\040). */
function fstabField(s: string): string {
  return s.replace(/ /g, '\\040').replace(/\t/g, '\\011');
}

function metaValue(buffer: string, key: string): string | undefined {
  for (const line of buffer.split('\n')) if (line.startsWith(`${key}=`)) return line.slice(key.length + 1);
  return undefined;
}

function describe(step: RecipeStep): string {
  switch (step.kind) {
    case 'PKG':
      return `PKG ${step.packages.join(' ')}`;
    case 'CP':
      return `CP ${step.src.split('/').pop()} ${step.dst}`;
    case 'RUN':
      return `RUN ${step.command.length > 60 ? `${step.command.slice(0, 57)}...` : step.command}`;
    case 'SYSRC':
      return `SYSRC ${step.file} ${step.key}`;
    case 'MOUNT':
      return `MOUNT ${step.src} ${step.dst}`;
    case 'EXPOSE':
      return `EXPOSE ${step.entry}`;
    case 'META':
    case 'ENV':
      return `${step.kind} ${step.key}`;
    case 'SET':
      return `SET ${step.param}`;
  }
}

/**
 * Applies `steps` to `jail`. A jail that is not running is started before the first step
 * that works inside it (MOUNT, EXPOSE, SET, META and ENV before that change the stopped
 * jail). Throws at the first failing step: a JailyardError whose message starts with the
 * step's file:line and whose place names the step's position.
 */
export async function applyRecipe(jail: string, steps: RecipeStep[], deps: RecipeDeps): Promise<RecipeReport> {
  const report: RecipeReport = { jail, started: false, steps: [] };
  const record = await deps.service.get(jail);
  const name = record.name;
  const running = async (): Promise<void> => {
    const j = await deps.service.get(name);
    if (j.state === 'running') return;
    const r = await deps.service.start([name]);
    const o = r.outcomes.find((x) => x.name === name);
    if (!r.ok || o?.status === 'failed')
      throw new JailyardError('JY_ERR_STEP_FAILED', `the jail could not be started: ${o?.message ?? 'failed'}`, {
        jail: name,
        step: 'start',
      });
    report.started = true;
    deps.progress(`${name}: started for the recipe`);
  };
  const inJail = async (argv: string[], input?: Buffer): Promise<StepResult> => {
    await running();
    const r = await deps.exec(name, argv, input);
    if (r.code !== 0) {
      const output = `${r.stderr}${r.stdout}`.trim();
      throw new JailyardError(
        'JY_ERR_STEP_FAILED',
        `exited with ${r.signal ? `signal ${r.signal}` : `status ${r.code}`}`,
        { jail: name, ...(output ? { output: output.slice(-4000) } : {}) },
      );
    }
    return r.stdout.includes(UNCHANGED) ? 'unchanged' : 'changed';
  };
  const listParam = async (param: string, entry: string, immutable: boolean): Promise<StepResult> => {
    const j = await deps.service.get(name);
    const list = paramList(j.params, param);
    if (list.includes(entry)) return 'unchanged';
    if (immutable && j.state !== 'stopped')
      throw new JailyardError(
        'JY_ERR_INVALID_TRANSITION',
        `${param} cannot change while the jail is ${j.state}: stop it first, or put this step before the first RUN, CP, PKG or SYSRC (which start it)`,
        { jail: name, param },
      );
    await deps.service.modify(name, { params: { [param]: [...list, entry] } });
    return 'changed';
  };

  for (const step of steps) {
    const place = `${step.pos.file}:${step.pos.line}`;
    if (deps.signal?.aborted)
      throw new JailyardError('JY_ERR_INTERRUPTED', `stopped before ${describe(step)}: the caller went away`, {
        pos: step.pos,
        jail: name,
      });
    let result: StepResult;
    try {
      switch (step.kind) {
        case 'PKG':
          result = await inJail(['/bin/sh', '-c', PKG_SCRIPT, 'sh', ...step.packages]);
          break;
        case 'CP': {
          const src = deps.readSource(step.src, step.pos);
          result = await inJail(
            ['/bin/sh', '-c', CP_SCRIPT, 'sh', step.dst, (src.mode & 0o7777 & ~0o6000).toString(8)],
            src.data,
          );
          break;
        }
        case 'RUN': {
          await running();
          const r = await deps.exec(name, ['/bin/sh', '-c', step.command]);
          if (r.stdout) deps.output(r.stdout);
          if (r.stderr) deps.output(r.stderr);
          if (r.code !== 0)
            throw new JailyardError(
              'JY_ERR_STEP_FAILED',
              `exited with ${r.signal ? `signal ${r.signal}` : `status ${r.code}`}`,
              { jail: name },
            );
          result = 'changed';
          break;
        }
        case 'SYSRC':
          result = await inJail([
            '/bin/sh',
            '-c',
            SYSRC_SCRIPT,
            'sh',
            step.file,
            step.key,
            `${step.key}="${step.value}"`,
          ]);
          break;
        case 'MOUNT': {
          const root = (await deps.rootOf(name)).replace(/\/+$/, '');
          const line = `${fstabField(step.src)} ${fstabField(root + step.dst)} nullfs ${step.readonly ? 'ro' : 'rw'} 0 0`;
          result = await listParam('mount', line, true);
          break;
        }
        case 'EXPOSE':
          result = await listParam('expose', step.entry, false);
          break;
        case 'META':
        case 'ENV': {
          const j = await deps.service.get(name);
          const buffer = step.kind === 'META' ? j.meta : j.env;
          if (metaValue(buffer, step.key) === step.value) result = 'unchanged';
          else {
            const op = [{ op: 'set' as const, key: step.key, value: step.value }];
            await deps.service.modify(name, step.kind === 'META' ? { meta: op } : { env: op });
            result = 'changed';
          }
          break;
        }
        case 'SET': {
          const j = await deps.service.get(name);
          const now = j.params[step.param];
          if (now !== undefined && String(now) === step.value) result = 'unchanged';
          else {
            await deps.service.modify(name, { params: { [step.param]: step.value } });
            result = 'changed';
          }
          break;
        }
      }
    } catch (e) {
      const inner = isJailyardError(e) ? e : undefined;
      const why = inner
        ? `${inner.message}${inner.place.param ? ` (parameter ${inner.place.param})` : ''}${inner.place.key ? ` (key ${inner.place.key})` : ''}`
        : e instanceof Error
          ? e.message
          : String(e);
      // file:line:col first (describe()), the jail, then what the step did
      throw new JailyardError(
        inner?.code ?? 'JY_ERR_STEP_FAILED',
        `${describe(step)} failed: ${why}`,
        {
          pos: step.pos,
          jail: name,
          step: `recipe ${step.kind}`,
          ...(inner?.place.output ? { output: inner.place.output } : {}),
        },
        { cause: e },
      );
    }
    report.steps.push({ place, kind: step.kind, result });
    deps.progress(`${place} ${describe(step)}: ${result}`);
  }
  return report;
}
