// jailyard start — see docs/cli.md#start
import type { RegisterVerb } from '../context.ts';
import { registerBatchVerb } from '../jails.ts';

export const register: RegisterVerb = (program, io) =>
  registerBatchVerb(program, io, {
    name: 'start',
    description: "start jails in jail(8)'s order (exec.prepare ... exec.poststart), dependencies first",
    past: 'started',
  });
