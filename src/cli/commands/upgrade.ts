// jailyard upgrade — see docs/cli.md#upgrade
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
