// jailyard serve — see docs/cli.md#serve
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
