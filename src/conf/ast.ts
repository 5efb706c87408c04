// The parsed (not yet evaluated) form of a jail.conf: sections of parameter statements in
// file order, includes already spliced in, nested blocks already flattened to dotted names.

import type { SourcePosition } from '../errors.ts';
import type { Piece } from './lexer.ts';

/** One value string: pieces of literal text and `$var` references, glued. */
export interface Word {
  pos: SourcePosition;
  pieces: Piece[];
}

/** `name;`, `name = v, ...;`, `name += v;`, `name v;`, or `$var = v;` (isVar). */
export interface ParamStmt {
  pos: SourcePosition;
  name: string;
  isVar: boolean;
  append: boolean;
  values: Word[];
}

/**
 * A jail block, a wildcard block (`*`, `web*`, `foo.*`), or the global pseudo-section
 * `*` that holds parameters written outside any block (as in FreeBSD's jailparse.y).
 */
export interface Section {
  pos: SourcePosition;
  name: string;
  params: ParamStmt[];
}

export interface ConfAst {
  sections: Section[];
}
