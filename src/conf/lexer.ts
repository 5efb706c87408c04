// jail.conf(5) lexer, after FreeBSD's usr.sbin/jail/jaillex.l. Adjacent pieces with no
// whitespace between them (`/var/jail/$name`, `"a"'b'`, `web*`) form ONE word, the way
// jaillex.l returns STR then STR1/VAR1 continuations that jailparse.y glues together.

import type { SourcePosition } from '../errors.ts';
import type { SourceTexts } from './source.ts';

/** A piece of a word: literal text (escapes already applied) or a `$var` reference. */
export type Piece =
  | { kind: 'lit'; text: string; pos: SourcePosition; quoted: boolean }
  | { kind: 'var'; name: string; pos: SourcePosition };

export type Punct = ',' | ';' | '=' | '{' | '}' | '+=';

export type Token =
  | { kind: 'word'; pieces: Piece[]; pos: SourcePosition }
  | { kind: 'punct'; value: Punct; pos: SourcePosition }
  | { kind: 'eof'; pos: SourcePosition };

// jaillex.l's atomic string characters.
const ATOM = /[A-Za-z0-9_!%&()\-.:<>?@[\]^`|~]/;
const VAR_START = /[A-Za-z_]/;
const VAR_CHAR = /[A-Za-z0-9_]/;
const OCTAL = /[0-7]/;
const HEX = /[0-9A-Fa-f]/;
const SIMPLE_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

export function lex(text: string, file: string, sources: SourceTexts): Token[] {
  return new Lexer(text, file, sources).run();
}

class Lexer {
  readonly #text: string;
  readonly #file: string;
  readonly #sources: SourceTexts;
  #i = 0;
  #line = 1;
  #col = 1;
  readonly #tokens: Token[] = [];
  #word: Piece[] | undefined;
  #wordPos: SourcePosition | undefined;

  constructor(text: string, file: string, sources: SourceTexts) {
    this.#text = text;
    this.#file = file;
    this.#sources = sources;
    sources.add(file, text);
  }

  run(): Token[] {
    const t = this.#text;
    while (this.#i < t.length) {
      const c = t[this.#i] as string;
      const next = t[this.#i + 1];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
        this.#endWord();
        this.#advance(1);
      } else if (c === '#' || (c === '/' && next === '/')) {
        this.#endWord();
        while (this.#i < t.length && t[this.#i] !== '\n') this.#advance(1);
      } else if (c === '/' && next === '*') {
        this.#endWord();
        const start = this.#pos();
        const end = t.indexOf('*/', this.#i + 2);
        if (end < 0) throw this.#sources.error('JY_ERR_CONF_SYNTAX', 'unterminated comment: expected "*/"', start);
        this.#advance(end + 2 - this.#i);
      } else if (c === '+' && next === '=') {
        this.#punct('+=', 2);
      } else if (c === ',' || c === ';' || c === '=' || c === '{' || c === '}') {
        this.#punct(c, 1);
      } else if (ATOM.test(c)) {
        const pos = this.#pos();
        let s = '';
        while (this.#i < t.length && ATOM.test(t[this.#i] as string)) {
          s += t[this.#i];
          this.#advance(1);
        }
        this.#lit(s, pos, false);
      } else if (c === '\\') {
        const pos = this.#pos();
        this.#lit(this.#escape(), pos, false);
      } else if (c === '$') {
        this.#dollar(false);
      } else if (c === '*' || c === '+' || c === '/') {
        this.#lit(c, this.#pos(), false);
        this.#advance(1);
      } else if (c === "'") {
        this.#singleQuoted();
      } else if (c === '"') {
        this.#doubleQuoted();
      } else {
        const shown =
          c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f
            ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`
            : c;
        throw this.#sources.error(
          'JY_ERR_CONF_SYNTAX',
          `unexpected character "${shown}" (quote values that contain it)`,
          this.#pos(),
        );
      }
    }
    this.#endWord();
    this.#tokens.push({ kind: 'eof', pos: this.#pos() });
    return this.#tokens;
  }

  #pos(): SourcePosition {
    return { file: this.#file, line: this.#line, col: this.#col };
  }

  #advance(n: number): void {
    for (let k = 0; k < n && this.#i < this.#text.length; k++) {
      if (this.#text[this.#i] === '\n') {
        this.#line++;
        this.#col = 1;
      } else {
        this.#col++;
      }
      this.#i++;
    }
  }

  #punct(value: Punct, len: number): void {
    this.#endWord();
    this.#tokens.push({ kind: 'punct', value, pos: this.#pos() });
    this.#advance(len);
  }

  #piece(p: Piece): void {
    if (!this.#word) {
      this.#word = [];
      this.#wordPos = p.pos;
    }
    const last = this.#word[this.#word.length - 1];
    // Glue adjacent literal text of the same quoting so a word has few pieces.
    if (p.kind === 'lit' && last?.kind === 'lit' && last.quoted === p.quoted) last.text += p.text;
    else this.#word.push(p);
  }

  #lit(text: string, pos: SourcePosition, quoted: boolean): void {
    this.#piece({ kind: 'lit', text, pos, quoted });
  }

  #endWord(): void {
    if (this.#word && this.#wordPos) this.#tokens.push({ kind: 'word', pieces: this.#word, pos: this.#wordPos });
    this.#word = undefined;
    this.#wordPos = undefined;
  }

  /** At a backslash: consume the escape and return what it stands for (jaillex.l text2lval). */
  #escape(): string {
    const t = this.#text;
    const pos = this.#pos();
    this.#advance(1);
    if (this.#i >= t.length)
      throw this.#sources.error('JY_ERR_CONF_SYNTAX', 'backslash at end of file: expected a character to escape', pos);
    const c = t[this.#i] as string;
    if (c === '\n') {
      this.#advance(1); // line continuation
      return '';
    }
    if (OCTAL.test(c)) {
      let digits = '';
      while (digits.length < 3 && this.#i < t.length && OCTAL.test(t[this.#i] as string)) {
        digits += t[this.#i];
        this.#advance(1);
      }
      return String.fromCharCode(parseInt(digits, 8) & 0xff);
    }
    if (c === 'x') {
      this.#advance(1);
      let digits = '';
      while (digits.length < 2 && this.#i < t.length && HEX.test(t[this.#i] as string)) {
        digits += t[this.#i];
        this.#advance(1);
      }
      if (!digits) throw this.#sources.error('JY_ERR_CONF_SYNTAX', 'expected one or two hex digits after "\\x"', pos);
      return String.fromCharCode(parseInt(digits, 16));
    }
    this.#advance(1);
    return SIMPLE_ESCAPES[c] ?? c;
  }

  /** At `$`: a `$name` or `${name}` reference, or a literal dollar sign. */
  #dollar(inDoubleQuotes: boolean): void {
    const t = this.#text;
    const pos = this.#pos();
    const next = t[this.#i + 1];
    if (next !== undefined && VAR_START.test(next)) {
      this.#advance(1);
      let name = '';
      while (this.#i < t.length && VAR_CHAR.test(t[this.#i] as string)) {
        name += t[this.#i];
        this.#advance(1);
      }
      this.#piece({ kind: 'var', name, pos });
      return;
    }
    if (next === '{') {
      this.#advance(2);
      let name = '';
      for (;;) {
        const c = t[this.#i];
        if (c === '}') break;
        if (c === undefined || c === '\n' || c === '{' || (inDoubleQuotes && c === '"')) {
          throw this.#sources.error('JY_ERR_CONF_SYNTAX', 'unterminated variable: expected "}"', pos);
        }
        if (c === '\\') name += this.#escape();
        else {
          name += c;
          this.#advance(1);
        }
      }
      this.#advance(1);
      if (!name) throw this.#sources.error('JY_ERR_CONF_VARIABLE', 'empty variable name "${}"', pos);
      this.#piece({ kind: 'var', name, pos });
      return;
    }
    this.#lit('$', pos, inDoubleQuotes);
    this.#advance(1);
  }

  #singleQuoted(): void {
    // FreeBSD applies backslash escapes in single quotes too; only `$` stays literal.
    const t = this.#text;
    const pos = this.#pos();
    this.#advance(1);
    let s = '';
    for (;;) {
      const c = t[this.#i];
      if (c === undefined)
        throw this.#sources.error('JY_ERR_CONF_SYNTAX', "unterminated string: expected a closing '", pos);
      if (c === "'") break;
      if (c === '\\') s += this.#escape();
      else {
        s += c;
        this.#advance(1);
      }
    }
    this.#advance(1);
    this.#lit(s, pos, true);
  }

  #doubleQuoted(): void {
    const t = this.#text;
    const pos = this.#pos();
    this.#advance(1);
    // Mark the word as quoted even when the string is empty (`""` is a value).
    this.#lit('', pos, true);
    let s = '';
    let sPos = this.#pos();
    for (;;) {
      const c = t[this.#i];
      if (c === undefined)
        throw this.#sources.error('JY_ERR_CONF_SYNTAX', 'unterminated string: expected a closing "', pos);
      if (c === '"') break;
      if (c === '\\') s += this.#escape();
      else if (c === '$') {
        if (s) this.#lit(s, sPos, true);
        s = '';
        this.#dollar(true);
        sPos = this.#pos();
      } else {
        s += c;
        this.#advance(1);
      }
    }
    this.#advance(1);
    if (s) this.#lit(s, sPos, true);
  }
}
