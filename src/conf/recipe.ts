// Recipes (`Jailfile`): ordered steps that make a jail what it should be, like Bastille's
// Bastillefile and AppJail's Makejail (docs/cli.md#recipe). Pure: parsing one file into
// instructions, then expanding arguments and INCLUDEs (the caller reads files) into a flat
// list of steps, each with the file:line:col it came from. src/runtime/recipe.ts runs them.
//
//   # comment                       a line ending in \ goes on on the next one
//   ARG name[=default]              an argument; --arg name=value overrides the default
//   INCLUDE file [name=value ...]   another recipe (relative to this one's folder), its args
//   PKG pkg ...   (also APT)        Debian packages in the jail (skipped when installed)
//   CP src dst                      a file of the recipe's folder to an absolute jail path
//   RUN command   (also CMD)        a command line for the jail's /bin/sh
//   SYSRC [-f file] key=value       key="value" in a file of the jail (default /etc/rc.conf)
//   MOUNT src dst [ro|rw]           a host folder at a jail path (the `mount` parameter)
//   EXPOSE [proto:]host[:jail]      a published port (the `expose` parameter)
//   META key=value / ENV key=value  the jail's meta / env keys
//   SET param=value                 any jail parameter (jail -m)
//
// ${name} in any argument is the argument's value ($$ is a literal $). Words may be quoted
// with "..." or '...'.

import { posix } from 'node:path';
import { JailyardError, type SourcePosition } from '../errors.ts';

export type RecipeStep =
  | { kind: 'PKG'; packages: string[]; pos: SourcePosition }
  | { kind: 'CP'; src: string; dst: string; pos: SourcePosition }
  | { kind: 'RUN'; command: string; pos: SourcePosition }
  | { kind: 'SYSRC'; file: string; key: string; value: string; pos: SourcePosition }
  | { kind: 'MOUNT'; src: string; dst: string; readonly: boolean; pos: SourcePosition }
  | { kind: 'EXPOSE'; entry: string; pos: SourcePosition }
  | { kind: 'META' | 'ENV'; key: string; value: string; pos: SourcePosition }
  | { kind: 'SET'; param: string; value: string; pos: SourcePosition };

/** One word of a line, after quotes were taken off, with where it began. */
interface Word {
  text: string;
  pos: SourcePosition;
  /** The word came (partly) from quotes: a leading '-' is not an option. */
  quoted: boolean;
}

/** One instruction line as written (before ${} expansion). */
export interface RecipeLine {
  keyword: string;
  pos: SourcePosition;
  /** The words after the keyword. */
  words: Word[];
  /** The text after the keyword as written (RUN keeps it whole), and where it began. */
  rest: { text: string; pos: SourcePosition };
}

const KEYWORDS = new Set([
  'ARG',
  'INCLUDE',
  'PKG',
  'APT',
  'CP',
  'RUN',
  'CMD',
  'SYSRC',
  'MOUNT',
  'EXPOSE',
  'META',
  'ENV',
  'SET',
]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function fail(message: string, pos: SourcePosition): never {
  throw new JailyardError('JY_ERR_CONF_SYNTAX', message, { pos });
}

/** Logical lines (continuations joined) with each character's position. */
function logicalLines(text: string, file: string): { text: string; at: SourcePosition[] }[] {
  const out: { text: string; at: SourcePosition[] }[] = [];
  let cur = '';
  let at: SourcePosition[] = [];
  const physical = text.split('\n');
  physical.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const continued = /(^|[^\\])(\\\\)*\\$/.test(line) && !line.trimStart().startsWith('#');
    const body = continued ? line.slice(0, -1) : line;
    for (let c = 0; c < body.length; c++) {
      cur += body[c];
      at.push({ file, line: i + 1, col: c + 1 });
    }
    if (continued && i < physical.length - 1) {
      // the joined lines are one word apart
      cur += ' ';
      at.push({ file, line: i + 1, col: body.length + 1 });
      return;
    }
    out.push({ text: cur, at: [...at, { file, line: i + 1, col: body.length + 1 }] });
    cur = '';
    at = [];
  });
  return out;
}

/** Splits text into words: blanks separate, "..." and '...' quote (\" and \\ inside "..."). */
function splitWords(text: string, at: SourcePosition[], from: number): Word[] {
  const words: Word[] = [];
  let i = from;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const start = at[i]!;
    let w = '';
    let quoted = false;
    while (i < text.length && !/\s/.test(text[i]!)) {
      const ch = text[i]!;
      if (ch === '"' || ch === "'") {
        quoted = true;
        const open = at[i]!;
        i++;
        while (i < text.length && text[i] !== ch) {
          if (ch === '"' && text[i] === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) i++;
          w += text[i];
          i++;
        }
        if (i >= text.length) fail(`unterminated ${ch === '"' ? 'double' : 'single'} quote`, open);
        i++;
        continue;
      }
      w += ch;
      i++;
    }
    words.push({ text: w, pos: start, quoted });
  }
  return words;
}

/** Parses one recipe file into its instruction lines. */
export function parseRecipe(text: string, file: string): RecipeLine[] {
  const lines: RecipeLine[] = [];
  for (const { text: line, at } of logicalLines(text, file)) {
    let i = 0;
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === '#') continue;
    let j = i;
    while (j < line.length && !/\s/.test(line[j]!)) j++;
    const keyword = line.slice(i, j).toUpperCase();
    const pos = at[i]!;
    if (!KEYWORDS.has(keyword))
      fail(`unknown instruction ${JSON.stringify(line.slice(i, j))} (known: ${[...KEYWORDS].join(', ')})`, pos);
    let k = j;
    while (k < line.length && /\s/.test(line[k]!)) k++;
    lines.push({
      keyword,
      pos,
      // a command line is the jail's shell's to split (its quotes are its own)
      words: keyword === 'RUN' || keyword === 'CMD' ? [] : splitWords(line, at, j),
      rest: { text: line.slice(k).trimEnd(), pos: at[k] ?? pos },
    });
  }
  return lines;
}

/** ${name} → its value; $$ → $; an unknown name is an error at its column. */
function expand(text: string, pos: SourcePosition, vars: Map<string, string>): string {
  return text.replace(/\$\$|\$\{([^}]*)\}/g, (m, name: string | undefined, offset: number) => {
    if (m === '$$') return '$';
    const at = { ...pos, col: pos.col + offset };
    if (!NAME.test(name ?? '')) fail(`${m} is not an argument reference (\${NAME})`, at);
    const v = vars.get(name!);
    if (v === undefined) fail(`unknown argument \${${name}} (declare it with ARG ${name} before)`, at);
    return v;
  });
}

function keyValue(w: Word, what: string, keyRe: RegExp, keyHelp: string): { key: string; value: string } {
  const eq = w.text.indexOf('=');
  if (eq <= 0) fail(`${what} takes KEY=VALUE, not ${JSON.stringify(w.text)}`, w.pos);
  const key = w.text.slice(0, eq);
  if (!keyRe.test(key)) fail(`${JSON.stringify(key)} is not a valid ${keyHelp}`, w.pos);
  return { key, value: w.text.slice(eq + 1) };
}

/** An absolute path inside the jail: normalized, never leaving its root through "..". */
function jailPath(w: Word, what: string): string {
  const p = w.text;
  if (!p.startsWith('/')) fail(`${what} must be an absolute path in the jail, not ${JSON.stringify(p)}`, w.pos);
  if (p.includes('\0')) fail(`${what} holds a NUL byte`, w.pos);
  if (p.split('/').includes('..')) fail(`${what} ${JSON.stringify(p)} must not contain ".."`, w.pos);
  const n = posix.normalize(p);
  if (n === '/') fail(`${what} cannot be the jail's root itself`, w.pos);
  return n.replace(/\/+$/, '');
}

/** A file of the recipe's own folder (relative, no ".." out of it): the host side of CP. */
function recipeRelative(w: Word, dir: string): string {
  const p = w.text;
  if (p.startsWith('/') || p.includes('\0') || p.split('/').includes('..') || p === '')
    fail(
      `CP copies files of the recipe's own folder: ${JSON.stringify(p)} must be a relative path without ".."`,
      w.pos,
    );
  return posix.join(dir, posix.normalize(p));
}

const PKG_NAME = /^[a-zA-Z0-9][a-zA-Z0-9+.:~_=-]*$/;
const SYSRC_KEY = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const META_KEY = /^[^=\s\0]+$/;
const PARAM = /^[a-z][a-z0-9_.]*$/;

export interface ExpandOptions {
  /** The caller's arguments (--arg name=value). Each must be declared by an ARG of the top file. */
  args?: Record<string, string>;
  /** Reads a recipe file (INCLUDE); absolute paths. */
  read(file: string): string;
}

/**
 * A recipe file's steps, with its ARGs bound (caller's values over defaults) and its
 * INCLUDEs expanded in place (each with its own arguments; a cycle is an error). Nothing is
 * run: every error (syntax, unknown argument, bad path) comes before the first step.
 */
export function loadRecipe(file: string, opts: ExpandOptions): RecipeStep[] {
  const top = posix.normalize(file);
  const steps: RecipeStep[] = [];
  const walk = (path: string, given: Record<string, string>, stack: string[], from?: SourcePosition): void => {
    if (stack.includes(path)) fail(`INCLUDE cycle: ${[...stack, path].join(' -> ')}`, from!);
    let text: string;
    try {
      text = opts.read(path);
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      if (from) fail(`cannot read the included recipe ${path}: ${why}`, from);
      throw new JailyardError('JY_ERR_CONF_INCLUDE', `cannot read the recipe ${path}: ${why}`, {}, { cause: e });
    }
    const dir = posix.dirname(path);
    const vars = new Map<string, string>();
    const declared = new Set<string>();
    const lines = parseRecipe(text, path);
    for (const a of Object.keys(given)) {
      if (!lines.some((l) => l.keyword === 'ARG' && l.words[0]?.text.split('=')[0] === a)) {
        if (from) fail(`INCLUDE ${path} ${a}=...: that recipe declares no ARG ${a}`, from);
        throw new JailyardError('JY_ERR_USAGE', `--arg ${a}: ${path} declares no ARG ${a}`, { param: '--arg' });
      }
    }
    for (const l of lines) {
      const w = l.words.map((x) => ({ ...x, text: expand(x.text, x.pos, vars) }));
      const need = (min: number, max: number, usage: string) => {
        if (w.length < min || w.length > max) fail(`${l.keyword} ${usage}`, l.pos);
      };
      switch (l.keyword) {
        case 'ARG': {
          need(1, 1, 'takes NAME or NAME=DEFAULT');
          const raw = l.words[0]!;
          const eq = raw.text.indexOf('=');
          const name = eq < 0 ? raw.text : raw.text.slice(0, eq);
          if (!NAME.test(name)) fail(`${JSON.stringify(name)} is not an argument name`, raw.pos);
          if (declared.has(name)) fail(`ARG ${name} is declared twice`, raw.pos);
          declared.add(name);
          const value = given[name] ?? (eq < 0 ? undefined : expand(raw.text.slice(eq + 1), raw.pos, vars));
          if (value === undefined) fail(`ARG ${name} has no default: give it with --arg ${name}=VALUE`, raw.pos);
          vars.set(name, value);
          break;
        }
        case 'INCLUDE': {
          need(1, Number.POSITIVE_INFINITY, 'takes a recipe file and NAME=VALUE arguments');
          const target = w[0]!;
          const sub = target.text.startsWith('/') ? posix.normalize(target.text) : posix.join(dir, target.text);
          const args: Record<string, string> = {};
          for (const a of w.slice(1)) {
            const kv = keyValue(a, 'an INCLUDE argument', NAME, 'argument name');
            args[kv.key] = kv.value;
          }
          walk(sub, args, [...stack, path], target.pos);
          break;
        }
        case 'PKG':
        case 'APT': {
          need(1, Number.POSITIVE_INFINITY, 'takes one or more package names');
          for (const p of w) if (!PKG_NAME.test(p.text)) fail(`${JSON.stringify(p.text)} is not a package name`, p.pos);
          steps.push({ kind: 'PKG', packages: w.map((p) => p.text), pos: l.pos });
          break;
        }
        case 'CP':
          need(2, 2, 'takes SOURCE (in the recipe folder) and an absolute DESTINATION in the jail');
          steps.push({
            kind: 'CP',
            src: recipeRelative(w[0]!, dir),
            dst: jailPath(w[1]!, 'the CP destination'),
            pos: l.pos,
          });
          break;
        case 'RUN':
        case 'CMD': {
          const command = expand(l.rest.text, l.rest.pos, vars);
          if (command.trim() === '') fail(`${l.keyword} needs a command`, l.pos);
          steps.push({ kind: 'RUN', command, pos: l.pos });
          break;
        }
        case 'SYSRC': {
          let file = '/etc/rc.conf';
          let rest = w;
          if (w[0]?.text === '-f' && !w[0].quoted) {
            if (!w[1]) fail('SYSRC -f needs a file', w[0].pos);
            file = jailPath(w[1], 'the SYSRC file');
            rest = w.slice(2);
          }
          if (rest.length !== 1) fail('SYSRC takes [-f FILE] KEY=VALUE', l.pos);
          const kv = keyValue(rest[0]!, 'SYSRC', SYSRC_KEY, 'rc.conf key');
          if (/["\\$`\n\r]/.test(kv.value))
            fail('a SYSRC value cannot hold ", \\, $, ` or a line break (it is written as KEY="VALUE")', rest[0]!.pos);
          steps.push({ kind: 'SYSRC', file, key: kv.key, value: kv.value, pos: l.pos });
          break;
        }
        case 'MOUNT': {
          need(2, 3, 'takes a host SOURCE folder, an absolute jail DESTINATION and ro or rw');
          const src = w[0]!;
          if (!src.text.startsWith('/') || /[\s\0]/.test(src.text))
            fail(
              `the MOUNT source must be an absolute host path without blanks, not ${JSON.stringify(src.text)}`,
              src.pos,
            );
          const mode = w[2]?.text ?? 'ro';
          if (mode !== 'ro' && mode !== 'rw') fail(`MOUNT takes ro or rw, not ${JSON.stringify(mode)}`, w[2]!.pos);
          const dst = jailPath(w[1]!, 'the MOUNT destination');
          if (/\s/.test(dst)) fail('the MOUNT destination cannot hold blanks', w[1]!.pos);
          steps.push({ kind: 'MOUNT', src: posix.normalize(src.text), dst, readonly: mode === 'ro', pos: l.pos });
          break;
        }
        case 'EXPOSE':
          need(1, Number.POSITIVE_INFINITY, 'takes [PROTO:]HOST[:JAIL] ports');
          for (const e of w) steps.push({ kind: 'EXPOSE', entry: e.text, pos: e.pos });
          break;
        case 'META':
        case 'ENV':
          need(1, Number.POSITIVE_INFINITY, 'takes KEY=VALUE pairs');
          for (const e of w) {
            const kv = keyValue(e, l.keyword, META_KEY, `${l.keyword.toLowerCase()} key`);
            steps.push({ kind: l.keyword, key: kv.key, value: kv.value, pos: e.pos });
          }
          break;
        case 'SET':
          need(1, Number.POSITIVE_INFINITY, 'takes PARAM=VALUE pairs');
          for (const e of w) {
            const kv = keyValue(e, 'SET', PARAM, 'jail parameter name');
            steps.push({ kind: 'SET', param: kv.key, value: kv.value, pos: e.pos });
          }
          break;
      }
    }
  };
  walk(top, opts.args ?? {}, []);
  return steps;
}

/** "file:line" of a step, for messages. */
export function stepPlace(step: { pos: SourcePosition }): string {
  return `${step.pos.file}:${step.pos.line}`;
}
