// jailyard restart — see docs/cli.md#restart
import type { RegisterVerb } from '../context.ts';
import { registerBatchVerb } from '../jails.ts';

export const register: RegisterVerb = (program, io) =>
  registerBatchVerb(program, io, {
    name: 'restart',
    description: 'stop, then start jails (jail -rc)',
    past: 'restarted',
  });
