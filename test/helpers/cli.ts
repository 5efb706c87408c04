// Runs the CLI in-process against one state folder and captures what it prints.
import { main } from '../../src/cli/main.ts';
import type { CliIO } from '../../src/cli/context.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function captureIO(): CliIO & { stdout: string; stderr: string } {
  const c = {
    stdout: '',
    stderr: '',
    out: (t: string) => void (c.stdout += t.endsWith('\n') ? t : `${t}\n`),
    err: (t: string) => void (c.stderr += t.endsWith('\n') ? t : `${t}\n`),
  };
  return c;
}

/** `jy(...args)` runs `jailyard --state <state()> ...args`. */
export function cliFor(state: () => string): (...args: string[]) => Promise<CliResult> {
  return async (...args) => {
    const io = captureIO();
    const code = await main(['--state', state(), ...args], io);
    return { code, stdout: io.stdout, stderr: io.stderr };
  };
}
