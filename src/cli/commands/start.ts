// jailyard start — see docs/cli.md#start
// A signal (Ctrl-C, SIGTERM, SIGHUP) stops the start: no further jail begins, the jail being
// started is rolled back before its next step, and the jails this command started are
// stopped again; the exit status is 128 + the signal's number.
import type { RegisterVerb } from '../context.ts';
import { registerBatchVerb } from '../jails.ts';
import type { BatchResult, JailService } from '../../runtime/types.ts';

export const register: RegisterVerb = (program, io) =>
  registerBatchVerb(program, io, {
    name: 'start',
    description: "start jails in jail(8)'s order (exec.prepare ... exec.poststart), dependencies first",
    past: 'started',
    // the jails it started (dependencies too); what ran before is not its to stop
    undo: async (service, _requested, result, parallel) => await stopStarted(service, startedBy(result), parallel),
  });

/** Stops the jails an interrupted command started; the lines say what happened and what to run. */
export async function stopStarted(service: JailService, names: string[], parallel: number): Promise<string[]> {
  if (!names.length) return ['nothing of it is left running'];
  const r = await service.stop(names, { parallel });
  const failed = r.outcomes.filter((x) => x.status !== 'ok');
  const stopped = r.outcomes.filter((x) => x.status === 'ok').map((x) => x.name);
  return [
    ...(stopped.length ? [`stopped again: ${stopped.join(', ')}`] : []),
    ...failed.map((x) => `${x.name}: ${x.message ?? 'not stopped'}`),
    ...(failed.length ? [`run \`jailyard stop ${failed.map((x) => x.name).join(' ')}\` (or reconcile)`] : []),
  ];
}

/** The jails a start batch brought up (a jail that already ran fails with "already running"). */
export function startedBy(result: BatchResult | undefined): string[] {
  return (result?.outcomes ?? []).filter((x) => x.status === 'ok').map((x) => x.name);
}
