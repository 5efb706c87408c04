// jailyard skel — see docs/cli.md#skel
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
