// A strict, recording stand-in for the CommandRunner: FreeBSD's tools cannot run on this
// machine, so tests script the exact commands the driver must run, in order, with the
// answers the real tools would give. Any other command is a violation that fails verify()
// even if the driver caught the error thrown at it.

import type { ExecResult } from '../driver.ts';
import type { CommandRunner, RunOptions } from './runner.ts';

export interface ExpectedCall {
  argv: string[];
  /** The fake tool's answer (default: exit 0, no output). */
  result?: Partial<ExecResult>;
  /** Expected through runSync instead of run. */
  sync?: boolean;
}

export interface RecordedCall {
  argv: string[];
  opts: RunOptions;
  sync: boolean;
}

export interface FakeRunner extends CommandRunner {
  readonly calls: RecordedCall[];
  /** Descriptions of every call that did not match the script. */
  readonly violations: string[];
  /** Appends to the script. */
  expect(...calls: ExpectedCall[]): void;
  /** Throws unless the whole script ran, in order, and nothing else did. */
  verify(): void;
}

const show = (argv: string[]): string => JSON.stringify(argv);

export function createFakeRunner(script: ExpectedCall[] = []): FakeRunner {
  const pending = [...script];
  const calls: RecordedCall[] = [];
  const violations: string[] = [];

  const answer = (argv: string[], opts: RunOptions, sync: boolean): ExecResult => {
    calls.push({ argv: [...argv], opts, sync });
    const next = pending[0];
    if (!next || show(next.argv) !== show(argv) || Boolean(next.sync) !== sync) {
      const why = `unexpected ${sync ? 'runSync' : 'run'} ${show(argv)}; expected ${next ? `${next.sync ? 'runSync ' : ''}${show(next.argv)}` : 'no more commands'}`;
      violations.push(why);
      throw new Error(`fake runner: ${why}`);
    }
    pending.shift();
    return { code: 0, signal: null, stdout: '', stderr: '', ...next.result };
  };

  return {
    calls,
    violations,
    expect(...more) {
      pending.push(...more);
    },
    async run(argv, opts = {}) {
      return answer(argv, opts, false);
    },
    runSync(argv) {
      return answer(argv, {}, true);
    },
    verify() {
      const problems = [...violations, ...pending.map((p) => `never ran ${show(p.argv)}`)];
      if (problems.length) throw new Error(`fake runner:\n  ${problems.join('\n  ')}`);
    },
  };
}
