// jailyard rollout — see docs/lb.md#rollout
import { resolve } from 'node:path';
import { JailyardError, isJailyardError } from '../../errors.ts';
import { loadConf } from '../../conf/evaluate.ts';
import type { JailSpec } from '../../conf/spec.ts';
import {
  abortRollout,
  newRolloutState,
  readRolloutState,
  rolloutFileFor,
  runRollout,
  type RolloutState,
} from '../../lb/rollout.ts';
import type { RegisterVerb } from '../context.ts';
import { withSession } from '../jails.ts';
import { interruptible } from '../signals.ts';

function loadTemplate(file: string | undefined, jail: string | undefined): JailSpec {
  if (!file) throw new JailyardError('JY_ERR_USAGE', '--template <jail.conf> is required', { param: 'template' });
  const specs = loadConf(file);
  const spec = jail ? specs.find((s) => s.name === jail) : specs[0];
  if (!spec)
    throw new JailyardError('JY_ERR_USAGE', jail ? `no jail "${jail}" in ${file}` : `no jail in ${file}`, {
      param: 'template-jail',
    });
  if (!jail && specs.length > 1)
    throw new JailyardError('JY_ERR_USAGE', `${file} has ${specs.length} jails: name one with --template-jail`, {
      param: 'template-jail',
    });
  return spec;
}

/** --address-range 120-129 → { addressRange: [120, 129] }. */
function addressRange(text: string | undefined): { addressRange?: [number, number] } {
  if (text === undefined) return {};
  const m = /^(\d{1,3})-(\d{1,3})$/.exec(text);
  const range = m ? ([Number(m[1]), Number(m[2])] as [number, number]) : undefined;
  if (!range || range[0] < 2 || range[1] > 254 || range[0] > range[1])
    throw new JailyardError('JY_ERR_USAGE', `--address-range must be FROM-TO within 2-254, got "${text}"`, {
      param: 'address-range',
    });
  return { addressRange: range };
}

export const register: RegisterVerb = (program, io) => {
  program
    .command('rollout')
    .description('replace the jails of one version by healthy jails of another, without downtime')
    .requiredOption('-l, --selector <selector>', 'the service, e.g. app=www')
    .option('--from <labels>', 'the old version, e.g. version=v1')
    .option('--to <labels>', 'the new version, e.g. version=v2')
    .option('--replicas <n>', 'how many new jails serve at the end')
    .option('--max-surge <n>', 'extra jails allowed during the rollout', '1')
    .option('--max-unavailable <n>', 'jails allowed below --replicas during the rollout', '0')
    .option('--template <jail.conf>', 'the jail.conf whose jail new jails copy')
    .option('--template-jail <name>', 'which jail of the template file')
    .option('--port <port>', 'HTTP port the jails serve (health check and `port` label)', '80')
    .option('--health-path <path>', 'health check path (GET answers 200)', '/')
    .option('--health-timeout <seconds>', 'how long a new jail may take to become healthy', '30')
    .option('--admin-socket <path>', 'HAProxy admin socket: wait for the pool (a `lb haproxy` controller must run)')
    .option('--backend <name>', 'HAProxy backend', 'www')
    .option('--address-range <from-to>', 'host numbers N of 198.51.100.N new jails may take (default 2-254)')
    .option('--resume', 'continue the saved rollout of --selector')
    .option('--abort', 'go back to --from: remove the new jails this rollout created')
    .option('--json', 'print the final rollout state as JSON')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
      const num = (k: string): number => {
        const n = Number(str(k));
        if (!Number.isInteger(n) || n < 0)
          throw new JailyardError('JY_ERR_USAGE', `--${k} must be a non-negative integer, got "${str(k)}"`, {
            param: k,
          });
        return n;
      };
      await withSession(program, io, async ({ service, stateDir }) => {
        const selector = str('selector')!;
        const stateFile = rolloutFileFor(stateDir, selector);
        const saved = readRolloutState(stateFile);
        const adminSocket = str('adminSocket');
        // --resume/--abort reach the HAProxy the rollout was started with, unless told otherwise
        const lb = adminSocket ? { adminSocket: resolve(adminSocket), backend: str('backend') ?? 'www' } : saved?.lb;
        const progress = (line: string) => io.err(`rollout: ${line}`);
        // through a cluster node's API: new jails' addresses follow placement (placeAddress)
        const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
        const nodes = host
          ? async () => {
              const { fetchNodes } = await import('./nodes.ts');
              try {
                const r = await fetchNodes(host, process.env.JAILYARD_TOKEN);
                return r.cluster ? r.items : undefined;
              } catch (e) {
                // a daemon that lists no nodes (an older jailyard) serves one host
                if (isJailyardError(e) && e.code === 'JY_ERR_ROUTE_NOT_FOUND') return undefined;
                throw e;
              }
            }
          : undefined;
        const deps = {
          service,
          ...(nodes ? { nodes } : {}),
          stateFile,
          progress,
          healthTimeoutMs: num('healthTimeout') * 1000,
          ...(lb ? { lb } : {}),
        };
        // A signal stops a rollout between its steps (a jail being started is rolled back); the
        // progress is saved as interrupted with the command that carries on. An --abort is a
        // clean-up: it finishes whatever the signals.
        let interruptedBy: string | undefined;
        const state = await interruptible(
          io,
          o.abort ? 'the rollout abort' : 'the rollout',
          async (signal): Promise<RolloutState> => {
            const run = async (s: RolloutState, d: Parameters<typeof runRollout>[1]) => {
              try {
                return await runRollout(s, d);
              } catch (e) {
                // said once, with its --resume/--abort hint, as the interruption's line
                if (isJailyardError(e) && e.code === 'JY_ERR_INTERRUPTED') interruptedBy = e.message;
                throw e;
              }
            };
            let state: RolloutState;
            if (o.abort) {
              if (!saved)
                throw new JailyardError('JY_ERR_ROLLOUT', `no rollout saved for ${selector}`, { param: 'selector' });
              state = await abortRollout(saved, deps);
            } else if (o.resume) {
              if (!saved)
                throw new JailyardError('JY_ERR_ROLLOUT', `no rollout saved for ${selector}`, { param: 'selector' });
              state = await run(saved, {
                ...deps,
                signal,
                template: loadTemplate(saved.templateFile, saved.templateJail),
              });
            } else {
              if (saved && (saved.phase === 'running' || saved.phase === 'failed' || saved.phase === 'interrupted')) {
                throw new JailyardError(
                  'JY_ERR_ROLLOUT',
                  `a rollout of ${selector} is ${saved.phase} (${saved.from} → ${saved.to}): use --resume or --abort`,
                  { param: 'selector' },
                );
              }
              for (const k of ['from', 'to', 'replicas', 'template']) {
                if (!str(k)) throw new JailyardError('JY_ERR_USAGE', `--${k} is required`, { param: k });
              }
              const template = loadTemplate(str('template'), str('templateJail'));
              state = newRolloutState({
                selector,
                from: str('from')!,
                to: str('to')!,
                replicas: num('replicas'),
                maxSurge: num('maxSurge'),
                maxUnavailable: num('maxUnavailable'),
                port: num('port'),
                healthPath: str('healthPath') ?? '/',
                templateFile: resolve(str('template')!),
                ...(str('templateJail') ? { templateJail: str('templateJail')! } : {}),
                prefix: template.name,
                ...addressRange(str('addressRange')),
                ...(lb ? { lb } : {}),
              });
              state = await run(state, { ...deps, signal, template });
            }
            return state;
          },
          async () => [
            interruptedBy ?? `the rollout of ${str('selector')} is saved as interrupted: --resume or --abort`,
          ],
        );
        if (state && o.json) io.out(JSON.stringify(state));
        // stopped by an abort request (POST /v1/rollouts/ID/abort, the dashboard): it went back
        if (state?.phase === 'aborted' && !o.abort)
          throw new JailyardError(
            'JY_ERR_ROLLOUT',
            `the rollout of ${str('selector')} was aborted on request: the ${state.from} jails serve, the new ones are removed`,
            { param: 'selector' },
          );
      });
    });
};
