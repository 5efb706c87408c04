// jailyard apply — make jails match a jail.conf: create what is missing, modify what
// differs, start what is not running (jail -cm). --dry-run prints the plan and changes
// nothing. See docs/cli.md#apply
import type { RegisterVerb } from '../context.ts';
import { JailyardError, describeError } from '../../errors.ts';
import { loadConf } from '../../conf/evaluate.ts';
import type { JailSpec, Params } from '../../conf/spec.ts';
import type { MetaOp } from '../../meta/ops.ts';
import type { JailRecord } from '../../store/types.ts';
import { IMMUTABLE_WHILE_RUNNING } from '../../runtime/service.ts';
import { withSession } from '../jails.ts';
import { interruptible } from '../signals.ts';
import { startedBy, stopStarted } from './start.ts';
import type { BatchResult } from '../../runtime/types.ts';
import { completePlan } from '../../runtime/jailplan.ts';
import { jailRoot } from '../../layout.ts';
import { skeletonHooks } from '../../skeleton/hooks.ts';
import type { MountPlan } from '../../skeleton/plan.ts';

export interface ApplyAction {
  jail: string;
  action: 'create' | 'modify' | 'unchanged';
  set: Params;
  unset: string[];
  meta?: MetaOp[];
  env?: MetaOp[];
  /** stop + start needed because a parameter that cannot change while running changed */
  restart: boolean;
  start: boolean;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Pure: what apply would do for one spec given the stored jail (if any). */
export function planApply(spec: JailSpec, existing: JailRecord | undefined, startJails: boolean): ApplyAction {
  const { name: _n, meta, env, ...params } = spec.params;
  const metaOps: MetaOp[] | undefined = meta !== undefined ? [{ op: 'replace', value: String(meta) }] : undefined;
  const envOps: MetaOp[] | undefined = env !== undefined ? [{ op: 'replace', value: String(env) }] : undefined;
  if (!existing) {
    return {
      jail: spec.name,
      action: 'create',
      set: params,
      unset: [],
      ...(metaOps ? { meta: metaOps } : {}),
      ...(envOps ? { env: envOps } : {}),
      restart: false,
      start: startJails,
    };
  }
  const set: Params = {};
  for (const [k, v] of Object.entries(params)) if (!same(existing.params[k], v)) set[k] = v;
  const unset = Object.keys(existing.params).filter((k) => !(k in params));
  const metaChanged = meta !== undefined && String(meta) !== existing.meta;
  const envChanged = env !== undefined && String(env) !== existing.env;
  const changed = Object.keys(set).length > 0 || unset.length > 0 || metaChanged || envChanged;
  const running = existing.state === 'running';
  const restart = running && [...Object.keys(set), ...unset].some((k) => IMMUTABLE_WHILE_RUNNING.has(k));
  return {
    jail: spec.name,
    action: changed ? 'modify' : 'unchanged',
    set,
    unset,
    ...(metaChanged && metaOps ? { meta: metaOps } : {}),
    ...(envChanged && envOps ? { env: envOps } : {}),
    restart,
    start: startJails && !running,
  };
}

function blankRecord(name: string): JailRecord {
  return {
    name,
    jid: 0,
    state: 'stopped',
    params: {},
    meta: '',
    env: '',
    revision: 0,
    runtime: null,
    ready: false,
    lastError: null,
    createdAt: '',
    updatedAt: '',
  };
}

/** The complete plan start would execute: the skeleton's, then mount/fstab/devfs/guest. */
function planFor(stateDir: string, record: JailRecord): MountPlan {
  const root = jailRoot(stateDir, record);
  const base = record.params.skeleton ? skeletonHooks().plan(stateDir, record, root) : undefined;
  return completePlan(stateDir, record, root, base);
}

/** One line per plan step, in execution order (teardown is the mounts reversed). */
export function describePlan(plan: MountPlan): string[] {
  const lines = [`root ${plan.root}`];
  for (const d of plan.mkdirs) lines.push(`mkdir ${d}`);
  for (const l of plan.symlinks) lines.push(`symlink ${l.path} -> ${l.target}`);
  for (const m of plan.mounts) {
    switch (m.kind) {
      case 'bind':
        lines.push(`mount ${m.readonly ? 'ro' : 'rw'} bind ${m.source} ${m.target} (${m.origin})`);
        break;
      case 'overlay':
        lines.push(`mount overlay lower=${m.lower.join(':')} upper=${m.upper} ${m.target} (${m.origin})`);
        break;
      case 'fs':
        lines.push(`mount ${m.fstype} ${m.source} ${m.target} ${m.options.join(',')} (${m.origin})`);
        break;
      default:
        lines.push(`mount ${m.kind} ${m.target} (${m.origin})`);
    }
  }
  return lines;
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('apply')
    .description('create or modify jails to match a jail.conf, then start them (jail -cm)')
    .requiredOption('-f, --file <jail.conf>', 'the configuration file')
    .argument('[name...]', 'only these jails of the file')
    .option('--dry-run', "print what would be done (and each new jail's mount plan); change nothing")
    .option('--no-start', 'define and modify only; start nothing')
    .option('-p, --parallel <n>', 'start up to n independent jails at once', '1')
    .option('--json', 'print the plan (with --dry-run) or the outcome as JSON')
    .action(
      async (
        names: string[],
        o: { file: string; dryRun?: boolean; start: boolean; parallel: string; json?: boolean },
      ) => {
        let specs = loadConf(o.file);
        if (names.length) {
          const missing = names.filter((n) => !specs.some((s) => s.name === n));
          if (missing.length) throw new JailyardError('JY_ERR_USAGE', `not in ${o.file}: ${missing.join(', ')}`);
          specs = specs.filter((s) => names.includes(s.name));
        }
        await withSession(
          program,
          io,
          async ({ service, store, stateDir }) => {
            const actions: ApplyAction[] = [];
            for (const spec of specs)
              actions.push(
                planApply(
                  spec,
                  store ? store.getJail(spec.name) : await service.get(spec.name).catch(() => undefined),
                  o.start,
                ),
              );
            if (o.dryRun) {
              // the mount plan each jail would get (local store only: it reads the skeletons)
              const plans: Record<string, MountPlan> = {};
              if (store) {
                for (const a of actions) {
                  const existing = store.getJail(a.jail);
                  const params = { ...(existing?.params ?? {}), ...a.set };
                  for (const k of a.unset) delete params[k];
                  try {
                    plans[a.jail] = planFor(stateDir, { ...(existing ?? blankRecord(a.jail)), params });
                  } catch (e) {
                    io.err(`${a.jail}: no mount plan: ${describeError(e)}`);
                  }
                }
              }
              if (o.json) io.out(JSON.stringify({ actions, plans }));
              for (const a of actions) {
                io.err(`${a.jail}: ${a.action}${a.restart ? ' (restart needed)' : ''}${a.start ? ', start' : ''}`);
                for (const [k, v] of Object.entries(a.set)) io.err(`  set ${k} = ${JSON.stringify(v)}`);
                for (const k of a.unset) io.err(`  unset ${k}`);
                if (a.meta) io.err(`  meta = ${JSON.stringify((a.meta[0] as { value: string }).value)}`);
                if (a.env) io.err(`  env = ${JSON.stringify((a.env[0] as { value: string }).value)}`);
                const plan = plans[a.jail];
                if (plan) for (const line of describePlan(plan)) io.err(`  ${line}`);
              }
              return;
            }
            const toStart: string[] = [];
            const parallel = Number(o.parallel) || 1;
            let result: BatchResult | undefined;
            const file = o.file;
            let applied = 0;
            await interruptible(
              io,
              'the apply',
              async (signal) => {
                for (const a of actions) {
                  if (signal.aborted) return;
                  applied++;
                  if (a.action === 'create') {
                    await service.create({
                      spec: { name: a.jail, params: { name: a.jail, ...a.set } },
                      ...(a.meta ? { meta: a.meta } : {}),
                      ...(a.env ? { env: a.env } : {}),
                    });
                    io.err(`${a.jail}: created`);
                  } else if (a.action === 'modify') {
                    if (a.restart) {
                      const r = await service.stop([a.jail]);
                      if (!r.ok)
                        throw new JailyardError('JY_ERR_STEP_FAILED', r.outcomes[0]?.message ?? 'stop failed', {
                          jail: a.jail,
                        });
                      toStart.push(a.jail);
                    }
                    await service.modify(a.jail, {
                      params: a.set,
                      unset: a.unset,
                      ...(a.meta ? { meta: a.meta } : {}),
                      ...(a.env ? { env: a.env } : {}),
                    });
                    io.err(`${a.jail}: modified`);
                  }
                  if (a.start && !toStart.includes(a.jail)) toStart.push(a.jail);
                }
                if (signal.aborted) return;
                if (toStart.length) {
                  result = await service.start(toStart, { parallel, signal });
                  for (const x of result.outcomes) io.err(`${x.name}: ${x.status === 'ok' ? 'started' : x.message}`);
                  if (!result.ok) process.exitCode = 1;
                  if (o.json) io.out(JSON.stringify({ actions, outcomes: result.outcomes }));
                } else if (o.json) io.out(JSON.stringify({ actions, outcomes: [] }));
              },
              // interrupted: the jails it started are stopped again; the rest is named with the
              // command that finishes it (apply again: what is done already is left as it is)
              async () => {
                const lines = await stopStarted(service, startedBy(result), parallel);
                const all = await service.list();
                const notStarted = toStart.filter((n) => all.some((j) => j.name === n && j.state !== 'running'));
                const notApplied = actions.slice(applied).filter((a) => a.action !== 'unchanged');
                const what = [
                  ...(notApplied.length
                    ? [`not created or modified: ${notApplied.map((a) => a.jail).join(', ')}`]
                    : []),
                  ...(notStarted.length ? [`not running: ${notStarted.join(', ')}`] : []),
                ];
                if (what.length) lines.push(`${what.join('; ')}; \`jailyard apply -f ${file}\` finishes the apply`);
                return lines;
              },
            );
          },
          { progress: true },
        );
      },
    );
};
