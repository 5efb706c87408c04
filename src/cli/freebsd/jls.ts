// jls(8) front (stub until implemented).
import type { FrontIO, FrontScope } from './index.ts';

export async function jlsMain(_argv: string[], io: FrontIO, _scope: FrontScope): Promise<number> {
  io.stderr('jls: not implemented yet\n');
  return 1;
}
