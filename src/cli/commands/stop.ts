// jailyard stop — see docs/cli.md#stop
import type { RegisterVerb } from '../context.ts';
import { registerBatchVerb } from '../jails.ts';

export const register: RegisterVerb = (program, io) =>
  registerBatchVerb(program, io, {
    name: 'stop',
    description: 'stop jails in reverse order (exec.prestop ... exec.release), dependents first',
    past: 'stopped',
  });
