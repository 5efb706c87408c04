// jailyard restart — see docs/cli.md#restart
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
