// jailyard ls — see docs/cli.md#ls
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
