// Stopping a long-running verb (quickstart, serve, lb) by signal. The first SIGINT, SIGTERM
// or SIGHUP asks the verb to stop; the verb then takes down what it started. Every later
// signal only says that clean-up is under way: Node's default action for a second Ctrl-C
// would kill the process in the middle of it, leaving jails, mounts and HAProxy behind.
import type { CliIO } from './context.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const ignore = () => {};

export interface StopRequest {
  /** Resolves with the first signal received. */
  readonly requested: Promise<NodeJS.Signals>;
  /** Aborted at the first signal. */
  readonly signal: AbortSignal;
  /** Removes the handlers: call it after the clean-up has finished, never before. */
  dispose(): void;
}

export function trapStopSignals(io: CliIO, what: string): StopRequest {
  const abort = new AbortController();
  let resolveRequested!: (s: NodeJS.Signals) => void;
  const requested = new Promise<NodeJS.Signals>((r) => (resolveRequested = r));
  let count = 0;
  const handler = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      resolveRequested(sig);
      abort.abort(sig);
      return;
    }
    io.err(
      `jailyard: ${sig} again: still stopping ${what}; it finishes by itself (after kill -9, run \`jailyard reconcile\`)`,
    );
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    requested,
    signal: abort.signal,
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
      // Stopped by a signal, the process is on its way out: a signal that arrives between the
      // end of the clean-up and the exit must not turn a clean exit into a kill.
      if (count > 0) for (const s of SIGNALS) process.on(s, ignore);
    },
  };
}
