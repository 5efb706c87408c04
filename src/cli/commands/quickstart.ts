// jailyard quickstart — see docs/cli.md#quickstart
import type { RegisterVerb } from '../context.ts';

export const register: RegisterVerb = (_program, _io) => {
  // not yet implemented
};
