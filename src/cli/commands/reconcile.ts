// jailyard reconcile — see docs/cli.md#reconcile
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
