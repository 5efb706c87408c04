// Stopping a verb by signal. The first SIGINT, SIGTERM or SIGHUP asks the verb to stop (its
// AbortSignal); the verb then takes down what it started. Every later signal only says that
// clean-up is under way: Node's default action for a second Ctrl-C would kill the process
// in the middle of it, leaving jails, mounts and HAProxy behind. The quick start stops this
// way as its normal end (exit 0); one-shot verbs (apply, start, rollout) undo what they
// started and end with 128 + the signal's number (130, 143, 129).
import { constants } from 'node:os';
import { outputPending, type CliIO } from './context.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const ignore = () => {};

/** After the clean-up of a process stopped by a signal, how long output still pending for a
 * slow reader (a full pipe nobody reads) may keep it alive before it exits anyway. */
const EXIT_GRACE_MS = 2000;

export interface StopRequest {
  /** Resolves with the first signal received. */
  readonly requested: Promise<NodeJS.Signals>;
  /** Aborted at the first signal (its reason is the signal's name). */
  readonly signal: AbortSignal;
  /** The first signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** Removes the handlers: call it after the clean-up has finished, never before. */
  dispose(): void;
}

/** The exit status of a process that stopped because of `sig`, as a shell reports it. */
export function exitCodeOf(sig: NodeJS.Signals): number {
  return 128 + (constants.signals[sig] ?? 0);
}

export function trapStopSignals(io: CliIO, what: string): StopRequest {
  const abort = new AbortController();
  let resolveRequested!: (s: NodeJS.Signals) => void;
  const requested = new Promise<NodeJS.Signals>((r) => (resolveRequested = r));
  let count = 0;
  let first: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      first = sig;
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
    get received() {
      return first;
    },
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
      if (count === 0) return;
      // Stopped by a signal, the process is on its way out: a signal that arrives between the
      // end of the clean-up and the exit must not turn a clean exit into a kill.
      for (const s of SIGNALS) process.on(s, ignore);
      // The process ends through process.exit(), with the exit code the verb set, as soon as
      // its output is written: a natural exit first closes the signal handlers, and a signal
      // in the moments before the process is gone kills it (30 of 30 times under a signal
      // every millisecond; none through process.exit()). And Node keeps a process alive while
      // a write to a pipe is queued: a reader that never reads would keep it forever, so
      // output still queued after a short grace is given up.
      const since = Date.now();
      setInterval(() => {
        if (!outputPending() || Date.now() - since > EXIT_GRACE_MS) process.exit();
      }, 50);
    },
  };
}

/**
 * Runs a one-shot verb's work with the signals trapped. `work` gets the AbortSignal to pass
 * on (to JailService batches); when a signal came, `undo` takes down what the verb started
 * (a second signal does not abandon it) and returns the lines that say what is left and which
 * command finishes it; they are printed, and the exit code becomes 128 + the signal number.
 */
export async function interruptible<T>(
  io: CliIO,
  what: string,
  work: (signal: AbortSignal) => Promise<T>,
  undo: (sig: NodeJS.Signals) => Promise<string[]>,
): Promise<T | undefined> {
  const stop = trapStopSignals(io, what);
  stop.signal.addEventListener('abort', () => io.err(`jailyard: ${String(stop.signal.reason)}: stopping ${what}`));
  try {
    let result: T | undefined;
    let failure: unknown;
    try {
      result = await work(stop.signal);
    } catch (e) {
      failure = e;
    }
    const sig = stop.received;
    if (sig === undefined) {
      if (failure !== undefined) throw failure;
      return result;
    }
    const lines = await undo(sig);
    for (const l of lines) io.err(`jailyard: ${l}`);
    process.exitCode = exitCodeOf(sig);
    return undefined;
  } finally {
    stop.dispose();
  }
}
