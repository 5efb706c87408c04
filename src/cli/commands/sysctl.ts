// jailyard sysctl — see docs/cli.md#sysctl
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
