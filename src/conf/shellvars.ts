// Reading rc.conf(5) variable assignments without running a shell: `NAME=value` words with
// sh(1) quoting ('...', "...", backslashes), comments, `;` between assignments, and
// expansion of variables assigned earlier ($x, ${x}, ${x:-word}, ${x-word}).
// Anything that would need a shell (command substitution, other statements) is refused.

import type { SourcePosition } from '../errors.ts';
import { SourceTexts } from './source.ts';

export interface ShellVar {
  value: string;
  pos: SourcePosition;
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

export function parseShellVars(
  text: string,
  file: string,
  sources: SourceTexts = new SourceTexts(),
): Map<string, ShellVar> {
  sources.add(file, text);
  // sh(1) cannot hold a NUL in a variable, and jail.conf refuses one in a value: an
  // imported value with one would make a jail.conf that cannot be read back
  const nul = text.indexOf('\0');
  if (nul >= 0) {
    const before = text.slice(0, nul).split('\n');
    throw sources.error('JY_ERR_CONF_SYNTAX', 'a NUL character: rc.conf is a text file', {
      file,
      line: before.length,
      col: before.at(-1)!.length + 1,
    });
  }
  const vars = new Map<string, ShellVar>();
  let i = 0;
  let line = 1;
  let col = 1;
  const pos = (): SourcePosition => ({ file, line, col });
  const advance = (): string => {
    const c = text[i] as string;
    i++;
    if (c === '\n') {
      line++;
      col = 1;
    } else col++;
    return c;
  };
  const fail = (message: string, at: SourcePosition = pos()): never => {
    throw sources.error('JY_ERR_CONF_SYNTAX', message, at);
  };

  const readName = (): string => {
    let n = '';
    while (i < text.length && NAME_CHAR.test(text[i] as string)) n += advance();
    return n;
  };

  /** At `$`: the expansion's value (unset variables are empty, as in sh). */
  const expand = (): string => {
    const at = pos();
    advance();
    const c = text[i];
    if (c !== undefined && NAME_START.test(c)) return vars.get(readName())?.value ?? '';
    if (c === '{') {
      advance();
      const name = readName();
      if (!name) fail('expected a variable name after "${"', at);
      const set = vars.get(name);
      let value = set?.value ?? '';
      let colon = false;
      if (text[i] === ':' && text[i + 1] === '-') {
        colon = true;
        advance();
      }
      if (text[i] === '-') {
        advance();
        let word = '';
        while (i < text.length && text[i] !== '}') {
          if (text[i] === '$') word += expand();
          else if (text[i] === '\n') fail('unterminated "${": expected "}"', at);
          else word += advance();
        }
        // ${x-word}: x unset; ${x:-word}: x unset or empty.
        if (set === undefined || (colon && set.value === '')) value = word;
      }
      if (text[i] !== '}') fail('unsupported "${...}" form (only ${x}, ${x:-word}, ${x-word})', at);
      advance();
      return value;
    }
    if (c === '(') fail('command substitution "$(...)" is not supported (rc.conf is read without running a shell)', at);
    return '$';
  };
  const readValue = (): string => {
    let v = '';
    for (;;) {
      const c = text[i];
      if (c === undefined || c === ' ' || c === '\t' || c === '\n' || c === ';') return v;
      if (c === '`') fail('command substitution "`...`" is not supported (rc.conf is read without running a shell)');
      if (c === '|' || c === '&' || c === '<' || c === '>' || c === '(' || c === ')')
        fail(`unexpected "${c}": only variable assignments are understood`);
      if (c === "'") {
        const at = pos();
        advance();
        while (text[i] !== "'") {
          if (i >= text.length) fail("unterminated string: expected a closing '", at);
          v += advance();
        }
        advance();
      } else if (c === '"') {
        const at = pos();
        advance();
        while (text[i] !== '"') {
          if (i >= text.length) fail('unterminated string: expected a closing "', at);
          const d = text[i];
          if (d === '\\') {
            advance();
            const e = text[i];
            if (e === '\n') advance();
            else if (e === '$' || e === '`' || e === '"' || e === '\\') v += advance();
            else v += '\\';
          } else if (d === '$') v += expand();
          else if (d === '`')
            fail('command substitution "`...`" is not supported (rc.conf is read without running a shell)');
          else v += advance();
        }
        advance();
      } else if (c === '\\') {
        advance();
        if (i >= text.length) return v;
        const e = advance();
        if (e !== '\n') v += e;
      } else if (c === '$') v += expand();
      else v += advance();
    }
  };

  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ';') {
      advance();
      continue;
    }
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') advance();
      continue;
    }
    const at = pos();
    if (!NAME_START.test(c)) fail('expected a variable assignment NAME=value');
    const name = readName();
    if (name === 'export' && (text[i] === ' ' || text[i] === '\t')) continue;
    if (text[i] !== '=') fail(`expected "=" after "${name}": only variable assignments are understood`);
    advance();
    vars.set(name, { value: readValue(), pos: at });
  }
  return vars;
}
