// Resolving parsed sections into one typed JailSpec per jail, after FreeBSD's
// usr.sbin/jail/config.c load_config():
// - a jail collects, in FILE ORDER, the parameters of every wildcard section that matches
//   it (the global pseudo-section `*` included) and of its own block; later statements
//   override earlier ones and `+=` appends to what was collected so far;
// - variables (`$x`, `${host.hostname}`) are resolved per jail against the jail's final
//   parameters and `$var = ...;` definitions, which are then dropped;
// - values are typed by the parameter registry.

import { readFileSync } from 'node:fs';
import { JailyardError, type SourcePosition } from '../errors.ts';
import type { ConfAst, ParamStmt, Section } from './ast.ts';
import { fsIncludeLoader } from './include.ts';
import type { Piece } from './lexer.ts';
import { parseConf, type ParseOptions } from './parser.ts';
import { isIntparamName, resolveParamName, suggestParams } from './params.ts';
import { SourceTexts } from './source.ts';
import { implicitJid, type JailSpec, type Params } from './spec.ts';
import { typeValue, ValueProblem } from './typing.ts';

export interface EvaluatedConf {
  jails: JailSpec[];
}

/** A value string before substitution, with where it was written. */
interface RawString {
  pieces: Piece[];
  pos: SourcePosition;
}

interface WorkParam {
  /** As last written (`nopersist` after `persist` renames it, like config.c). */
  name: string;
  /** The registry name for parameters, `$name` for variables: the identity of a slot. */
  key: string;
  isVar: boolean;
  values: RawString[];
  pos: SourcePosition;
  immutable: boolean;
  resolved?: { text: string; pos: SourcePosition }[];
  resolving?: boolean;
}

/**
 * Parses and evaluates jail.conf text; `file` names it in errors and anchors relative
 * `.include`s (read from disk unless `options.include` says otherwise).
 */
export function parseConfString(text: string, file: string, options: ParseOptions = {}): JailSpec[] {
  const sources = new SourceTexts();
  const ast = parseConf(text, file, sources, { include: fsIncludeLoader, ...options });
  return evaluate(ast, sources).jails;
}

/** A configuration file's text; an unreadable file is JY_ERR_CONF_INCLUDE at FILE:1:1. */
export function readConfFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new JailyardError(
      'JY_ERR_CONF_INCLUDE',
      `cannot read ${file}: ${(e as Error).message}`,
      { pos: { file, line: 1, col: 1 } },
      { cause: e },
    );
  }
}

/** Reads, parses and evaluates a jail.conf file (with its includes). */
export function loadConf(file: string, options: ParseOptions = {}): JailSpec[] {
  const text = readConfFile(file);
  return parseConfString(text, file, options);
}

export function evaluate(ast: ConfAst, sources: SourceTexts = new SourceTexts()): EvaluatedConf {
  const wild: { seq: number; section: Section }[] = [];
  const jails: { seq: number; section: Section }[] = [];
  const seen = new Map<string, SourcePosition>();
  ast.sections.forEach((section, seq) => {
    if (section.name.includes('*')) {
      wild.push({ seq, section });
      return;
    }
    checkJailName(section, sources);
    const before = seen.get(section.name);
    if (before) {
      throw sources.error(
        'JY_ERR_JAIL_NAME',
        `jail "${section.name}" is already defined at ${before.file}:${before.line}:${before.col}`,
        section.pos,
        {
          jail: section.name,
        },
      );
    }
    seen.set(section.name, section.pos);
    jails.push({ seq, section });
  });
  const specs = jails.map(({ seq, section }) => evaluateJail(section, seq, wild, sources));
  // a numeric block's `name` may be another block's name
  const byName = new Map<string, JailSpec>();
  specs.forEach((spec, i) => {
    const other = byName.get(spec.name);
    if (other) {
      const section = jails[i]!.section;
      throw sources.error(
        'JY_ERR_JAIL_NAME',
        `jail "${spec.name}" is already defined by block "${other.block ?? other.name}"`,
        section.pos,
        { jail: spec.name },
      );
    }
    byName.set(spec.name, spec);
  });
  return { jails: specs };
}

function checkJailName(section: Section, sources: SourceTexts, param?: 'name'): void {
  const name = section.name;
  if (/[\x00-\x1f\x7f]/.test(name) || name.split('.').some((c) => c === '')) {
    throw sources.error(
      'JY_ERR_JAIL_NAME',
      `bad jail name "${JSON.stringify(name).slice(1, -1)}": no empty components or control characters`,
      section.pos,
      { jail: name, ...(param ? { param } : {}) },
    );
  }
}

/** FreeBSD wild_jail_match(), with `*` also allowed inside one component (`web*`). */
export function wildcardMatches(jailName: string, wildName: string): boolean {
  const j = jailName.split('.');
  const w = wildName.split('.');
  for (let i = 0; i < w.length; i++) {
    const wc = w[i] as string;
    if (i === w.length - 1) {
      const rest = j.slice(i);
      if (rest.length === 0) return false;
      // A final lone `*` matches one or more components.
      return wc === '*' || (rest.length === 1 && componentMatches(rest[0] as string, wc));
    }
    if (i >= j.length - 1) return false;
    if (!componentMatches(j[i] as string, wc)) return false;
  }
  return false;
}

function componentMatches(component: string, pattern: string): boolean {
  if (!pattern.includes('*')) return component === pattern;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(component);
}

function evaluateJail(
  section: Section,
  seq: number,
  wild: { seq: number; section: Section }[],
  sources: SourceTexts,
): JailSpec {
  const jail = section.name;
  const params: WorkParam[] = [];
  const byKey = new Map<string, WorkParam>();

  const implicit = implicitJid(jail) !== undefined ? 'jid' : 'name';
  const implicitParam: WorkParam = {
    name: implicit,
    key: implicit,
    isVar: false,
    values: [
      {
        pieces: [
          { kind: 'lit', text: String(implicit === 'jid' ? Number(jail) : jail), pos: section.pos, quoted: true },
        ],
        pos: section.pos,
      },
    ],
    pos: section.pos,
    immutable: true,
  };
  params.push(implicitParam);
  byKey.set(implicit, implicitParam);

  const add = (stmt: ParamStmt): void => {
    // config.c add_param: a variable may not share a name with one of jail(8)'s own
    // parameters, set or not
    if (stmt.isVar && isIntparamName(stmt.name)) {
      throw sources.error(
        'JY_ERR_CONF_VARIABLE',
        `variable "$${stmt.name}" cannot have the same name as a parameter`,
        stmt.pos,
        { jail },
      );
    }
    const key = stmt.isVar ? stmt.name : (resolveParamName(stmt.name)?.def.name ?? stmt.name);
    const existing = byKey.get(key);
    const values = stmt.values.map((w) => ({ pieces: w.pieces, pos: w.pos }));
    if (!existing) {
      const p: WorkParam = { name: stmt.name, key, isVar: stmt.isVar, values, pos: stmt.pos, immutable: false };
      params.push(p);
      byKey.set(key, p);
      return;
    }
    if (existing.isVar !== stmt.isVar) {
      throw sources.error(
        'JY_ERR_CONF_VARIABLE',
        `variable "$${stmt.name}" cannot have the same name as a parameter`,
        stmt.pos,
        { jail },
      );
    }
    if (existing.immutable) {
      throw sources.error(
        'JY_ERR_PARAM_VALUE',
        `cannot redefine parameter "${existing.name}" (it is set by the jail's name)`,
        stmt.pos,
        {
          jail,
          param: existing.name,
        },
      );
    }
    existing.name = stmt.name;
    existing.pos = stmt.pos;
    if (stmt.append && values.length > 0) existing.values.push(...values);
    else existing.values = values;
  };

  // config.c: wildcard sections before the jail's block, then the block, then the rest.
  let didSelf = false;
  for (const w of wild) {
    if (seq < w.seq && !didSelf) {
      section.params.forEach(add);
      didSelf = true;
    }
    if (wildcardMatches(jail, w.section.name)) w.section.params.forEach(add);
  }
  if (!didSelf) section.params.forEach(add);
  // config.c: a numeric block is the jail with that jid; unless it sets `name`, the kernel
  // names it by its jid, and `${name}` reads that name
  if (implicit === 'jid' && !byKey.has('name')) {
    const p: WorkParam = {
      name: 'name',
      key: 'name',
      isVar: false,
      values: [{ pieces: [{ kind: 'lit', text: jail, pos: section.pos, quoted: true }], pos: section.pos }],
      pos: section.pos,
      immutable: false,
    };
    params.splice(1, 0, p);
    byKey.set('name', p);
  }

  const resolve = (p: WorkParam): { text: string; pos: SourcePosition }[] => {
    if (p.resolved) return p.resolved;
    p.resolving = true;
    const out: { text: string; pos: SourcePosition }[] = [];
    for (const raw of p.values) {
      const meaningful = raw.pieces.filter((x) => x.kind === 'var' || x.text !== '');
      const only = meaningful.length === 1 ? meaningful[0] : undefined;
      let text = '';
      let expanded = false;
      for (const piece of raw.pieces) {
        if (piece.kind === 'lit') {
          text += piece.text;
          continue;
        }
        const target = params.find((q) => q.name === piece.name) ?? byKey.get(piece.name);
        const where = { jail, param: p.isVar ? `$${p.name}` : p.name };
        if (!target || target.values.length === 0) {
          throw sources.error('JY_ERR_CONF_VARIABLE', `variable "${piece.name}" not found`, piece.pos, where);
        }
        if (target.resolving)
          throw sources.error('JY_ERR_CONF_VARIABLE', `variable loop through "${piece.name}"`, piece.pos, where);
        const got = resolve(target);
        if (got.length > 1) {
          if (only !== piece) {
            throw sources.error(
              'JY_ERR_CONF_VARIABLE',
              `list "${piece.name}" cannot be substituted inline (use it alone as a value)`,
              piece.pos,
              where,
            );
          }
          out.push(...got.map((g) => ({ text: g.text, pos: raw.pos })));
          expanded = true;
          break;
        }
        text += got[0]?.text ?? '';
      }
      if (!expanded) out.push({ text, pos: raw.pos });
    }
    p.resolving = false;
    p.resolved = out;
    return out;
  };

  const typed: Params = {};
  for (const p of params) {
    const values = resolve(p);
    // every variable is expanded for each jail, used or not, as jail(8) does (config.c): one
    // that names a missing variable fails the jail
    if (p.isVar) continue;
    const found = resolveParamName(p.name);
    if (!found) {
      const hints = suggestParams(p.name);
      const hint = hints.length ? `; did you mean ${hints.map((h) => `"${h}"`).join(' or ')}?` : '';
      throw sources.error('JY_ERR_PARAM_UNKNOWN', `unknown parameter "${p.name}"${hint}`, p.pos, {
        jail,
        param: p.name,
      });
    }
    if (found.def.flags.readOnly) {
      throw sources.error('JY_ERR_PARAM_VALUE', `parameter "${found.def.name}" is read-only`, p.pos, {
        jail,
        param: found.def.name,
      });
    }
    const v = typeValue(
      found.def,
      found.negated,
      values.map((x) => x.text),
    );
    if (v instanceof ValueProblem) {
      const at = v.index !== undefined ? (values[v.index]?.pos ?? p.pos) : p.pos;
      throw sources.error('JY_ERR_PARAM_VALUE', `${found.def.name}: ${v.message}`, at, { jail, param: found.def.name });
    }
    typed[found.def.name] = v;
  }
  const named = typeof typed.name === 'string' && typed.name !== '' ? typed.name : jail;
  if (named !== jail) {
    // a numeric block's `name` names the jail as a block name would: the same rules, and no
    // wildcard (a name with "*" would be read back as a wildcard section)
    const at = byKey.get('name')?.pos ?? section.pos;
    if (named.includes('*'))
      throw sources.error('JY_ERR_JAIL_NAME', `bad jail name "${named}": no "*" in a jail's name`, at, {
        jail,
        param: 'name',
      });
    checkJailName({ name: named, pos: at, params: [] }, sources, 'name');
  }
  return named === jail ? { name: jail, params: typed } : { name: named, block: jail, params: typed };
}
