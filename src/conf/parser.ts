// jail.conf(5) parser, after FreeBSD's usr.sbin/jail/jailparse.y:
//   conf    := { ';' | jail | param ';' | '.include' STRING { ',' STRING } ';' }
//   jail    := NAME '{' conf '}'     (a nested block names "outer.inner")
// Parameters outside every block go to one global `*` section, placed where the first of them
// stands (jailparse.y's global_jail); `.include` is read where it stands, also in a block, whose
// jail then takes the included file's parameters and names its blocks below its own.
//   param   := NAME | NAME '=' value | NAME '+=' value | NAME value   (NAME or '$'VAR)
//   value   := string { ',' string }
// Includes are read through a loader (so this stays free of file I/O and can be fuzzed).

import { resolve } from 'node:path';
import { isJailyardError, type SourcePosition } from '../errors.ts';
import type { ConfAst, ParamStmt, Section, Word } from './ast.ts';
import { lex, type Token } from './lexer.ts';
import type { SourceTexts } from './source.ts';

export interface IncludedFile {
  file: string;
  text: string;
}

/**
 * Resolves `.include "pattern";` written in `fromFile` to the files it names, in order.
 * Throws a JailyardError (JY_ERR_CONF_INCLUDE) naming `pos` when a literal file is missing.
 */
export type IncludeLoader = (pattern: string, fromFile: string, pos: SourcePosition) => IncludedFile[];

export interface ParseOptions {
  /** Resolves includes; without it, `.include` is an error. */
  include?: IncludeLoader;
  /** Include depth limit (a guard besides cycle detection). */
  maxIncludeDepth?: number;
}

export function parseConf(text: string, file: string, sources: SourceTexts, options: ParseOptions = {}): ConfAst {
  const parsed: Parsed = { sections: [] };
  new FileParser(text, file, sources, options, parsed, [resolve(file)]).parseTop();
  return { sections: parsed.sections };
}

/** What the files of one parse build together (an included file adds to its includer's). */
interface Parsed {
  sections: Section[];
  /** The global section, once a parameter outside every block made it. */
  global?: Section;
}

class FileParser {
  readonly #tokens: Token[];
  #at = 0;
  readonly #file: string;
  readonly #sources: SourceTexts;
  readonly #options: ParseOptions;
  readonly #parsed: Parsed;
  readonly #chain: string[];

  constructor(
    text: string,
    file: string,
    sources: SourceTexts,
    options: ParseOptions,
    parsed: Parsed,
    chain: string[],
  ) {
    this.#tokens = lex(text, file, sources);
    this.#file = file;
    this.#sources = sources;
    this.#options = options;
    this.#parsed = parsed;
    this.#chain = chain;
  }

  /** The whole file, read inside `within` (an including block) or at the top. */
  parseTop(within?: Section): void {
    this.#statements(within, true);
  }

  /** Statements up to the end of the file (`toEof`) or the "}" closing `within`. */
  #statements(within: Section | undefined, toEof: boolean): void {
    for (;;) {
      const t = this.#peek();
      if (t.kind === 'eof') {
        if (toEof) return;
        throw this.#expected(`"}" to close jail "${within?.name}"`, t);
      }
      if (t.kind === 'punct') {
        if (t.value === ';') {
          this.#at++;
          continue;
        }
        if (t.value === '}' && !toEof) {
          this.#at++;
          return;
        }
        throw this.#expected(within ? 'a parameter or "}"' : 'a jail name or a parameter', t);
      }
      if (this.#isInclude(t)) {
        this.#include(within);
        continue;
      }
      const after = this.#tokens[this.#at + 1];
      if (after?.kind === 'punct' && after.value === '{') {
        this.#block(within?.name ?? '');
        continue;
      }
      const p = this.#param();
      this.#expectPunct(';', 'after the parameter');
      if (within) within.params.push(p);
      else this.#global(p.pos).params.push(p);
    }
  }

  /** The one global section, made where the first parameter outside every block stands. */
  #global(pos: SourcePosition): Section {
    if (!this.#parsed.global) {
      this.#parsed.global = { pos, name: '*', params: [] };
      this.#parsed.sections.push(this.#parsed.global);
    }
    return this.#parsed.global;
  }

  #peek(): Token {
    return this.#tokens[this.#at] as Token;
  }

  #isInclude(t: Token): boolean {
    const first = t.kind === 'word' ? t.pieces[0] : undefined;
    return (
      // jail(8) compares the word's text, quoted or not (jailparse.y special_param)
      t.kind === 'word' && t.pieces.length === 1 && first?.kind === 'lit' && first.text === '.include'
    );
  }

  #expected(what: string, t: Token): Error {
    const found = t.kind === 'eof' ? 'end of file' : t.kind === 'punct' ? `"${t.value}"` : 'a word';
    return this.#sources.error('JY_ERR_CONF_SYNTAX', `expected ${what}, found ${found}`, t.pos);
  }

  #expectPunct(value: string, context: string): void {
    const t = this.#peek();
    if (t.kind === 'punct' && t.value === value) {
      this.#at++;
      return;
    }
    throw this.#expected(`"${value}" ${context}`, t);
  }

  /** The literal text of a word that may not contain variables (names, include paths). */
  #literal(w: Token & { kind: 'word' }, what: string): string {
    let s = '';
    for (const p of w.pieces) {
      if (p.kind === 'var')
        throw this.#sources.error('JY_ERR_CONF_SYNTAX', `${what} cannot contain a variable ("$${p.name}")`, p.pos);
      s += p.text;
    }
    return s;
  }

  #block(prefix: string): void {
    const nameTok = this.#peek() as Token & { kind: 'word' };
    const own = this.#literal(nameTok, 'a jail name');
    if (own === '') throw this.#sources.error('JY_ERR_JAIL_NAME', 'a jail name cannot be empty', nameTok.pos);
    const name = prefix ? `${prefix}.${own}` : own;
    this.#at += 2; // name and '{'
    // Reserve the section's place at its opening so a parent comes before its children.
    const section: Section = { pos: nameTok.pos, name, params: [] };
    this.#parsed.sections.push(section);
    this.#statements(section, false);
  }

  #param(): ParamStmt {
    const nameTok = this.#peek();
    if (nameTok.kind !== 'word') throw this.#expected('a parameter name', nameTok);
    this.#at++;
    const first = nameTok.pieces[0];
    let name: string;
    let isVar = false;
    if (nameTok.pieces.length === 1 && first?.kind === 'var') {
      name = first.name;
      isVar = true;
    } else {
      name = this.#literal(nameTok, 'a parameter name');
      if (name === '') throw this.#sources.error('JY_ERR_CONF_SYNTAX', 'a parameter name cannot be empty', nameTok.pos);
    }
    const t = this.#peek();
    let append = false;
    let values: Word[] = [];
    if (t.kind === 'punct' && (t.value === '=' || t.value === '+=')) {
      append = t.value === '+=';
      this.#at++;
      values = this.#value();
    } else if (t.kind === 'word') {
      values = this.#value();
    }
    // `$x;` is a variable with no value (jailparse.y takes it): using it is the error
    return { pos: nameTok.pos, name, isVar, append, values };
  }

  #value(): Word[] {
    const values: Word[] = [];
    for (;;) {
      const t = this.#peek();
      if (t.kind !== 'word') throw this.#expected('a value', t);
      values.push({ pos: t.pos, pieces: t.pieces });
      this.#at++;
      const sep = this.#peek();
      if (sep.kind === 'punct' && sep.value === ',') {
        this.#at++;
        continue;
      }
      return values;
    }
  }

  /** `.include "pattern"[, "pattern"...];` each read in turn where the statement stands. */
  #include(within: Section | undefined): void {
    const kw = this.#peek();
    this.#at++;
    const t = this.#peek();
    if (t.kind !== 'word') throw this.#expected('a file name after ".include"', t);
    const names = this.#value().map((w) => ({
      pattern: this.#literal({ ...t, ...w }, 'an include file name'),
      pos: w.pos,
    }));
    this.#expectPunct(';', 'after the included file name');
    const loader = this.#options.include;
    if (!loader)
      throw this.#sources.error('JY_ERR_CONF_INCLUDE', '".include" is not allowed here (no include loader)', kw.pos);
    const maxDepth = this.#options.maxIncludeDepth ?? 32;
    for (const { pattern, pos } of names) {
      let files: IncludedFile[];
      try {
        files = loader(pattern, this.#file, pos);
      } catch (e) {
        // Give the loader's error the caret excerpt of the include statement.
        if (isJailyardError(e) && !e.place.excerpt) throw this.#sources.error(e.code, e.message, e.place.pos ?? pos);
        throw e;
      }
      for (const inc of files) {
        const id = resolve(inc.file);
        if (this.#chain.includes(id)) {
          throw this.#sources.error('JY_ERR_CONF_INCLUDE', `include cycle: ${[...this.#chain, id].join(' -> ')}`, pos);
        }
        if (this.#chain.length >= maxDepth) {
          throw this.#sources.error('JY_ERR_CONF_INCLUDE', `includes nested deeper than ${maxDepth} files`, pos);
        }
        new FileParser(inc.text, inc.file, this.#sources, this.#options, this.#parsed, [...this.#chain, id]).parseTop(
          within,
        );
      }
    }
  }
}
