// Canonical jail.conf text for resolved specs: one block per jail, parameters in spec order,
// booleans as `p;` / `nop;`, values bare when safe and double-quoted otherwise, with every
// character that jail(8) would read specially escaped. evaluate(parse(printConf(s))) == s.

import { JailyardError } from '../errors.ts';
import { findParam } from './params.ts';
import { implicitJid, type JailSpec, type ParamValue } from './spec.ts';

// Words that need no quotes: no whitespace, quotes, `$`, `\`, separators, comment starts.
const BARE = /^[A-Za-z0-9_.:@%/-]+$/;

export function quoteValue(s: string): string {
  if (s !== '' && BARE.test(s) && !s.includes('//') && !s.includes('/*')) return s;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    const code = c.charCodeAt(0);
    if (c === '"' || c === '\\' || c === '$') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    // Three octal digits, so a following digit is never read as part of the escape.
    else if (code < 0x20 || code === 0x7f) out += `\\${code.toString(8).padStart(3, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

function printParam(name: string, value: ParamValue): string {
  if (typeof value === 'boolean') {
    if (value) return `${name};`;
    const dot = name.lastIndexOf('.');
    return `${name.slice(0, dot + 1)}no${name.slice(dot + 1)};`;
  }
  if (typeof value === 'number') return `${name} = ${value};`;
  if (Array.isArray(value)) return value.length === 0 ? `${name};` : `${name} = ${value.map(quoteValue).join(', ')};`;
  return `${name} = ${quoteValue(value)};`;
}

/** Canonical jail.conf text for `specs` (the implicit `name`/`jid` of each block left out). */
export function printConf(specs: readonly JailSpec[]): string {
  const blocks: string[] = [];
  for (const spec of specs) {
    if (spec.name === '' || spec.name.includes('*')) {
      throw new JailyardError(
        'JY_ERR_JAIL_NAME',
        `cannot print jail "${spec.name}": a jail name cannot be empty or contain "*"`,
        { jail: spec.name },
      );
    }
    // a numeric block that sets `name` prints as written (`5309 { name = basejail; }`), so
    // `jail -c 5309` still finds it and it reads back with the same block
    const block = spec.block ?? spec.name;
    const lines = [`${quoteValue(block)} {`];
    for (const [name, value] of Object.entries(spec.params)) {
      if ((name === 'name' && value === block) || (name === 'jid' && value === implicitJid(block))) continue;
      if (!findParam(name))
        throw new JailyardError('JY_ERR_PARAM_UNKNOWN', `cannot print unknown parameter "${name}"`, {
          jail: spec.name,
          param: name,
        });
      lines.push(`\t${printParam(name, value)}`);
    }
    lines.push('}');
    blocks.push(lines.join('\n'));
  }
  return blocks.length ? `${blocks.join('\n\n')}\n` : '';
}

/** The one-line `name: param = value;` form of `conf show` without --json. */
export function printParamLine(jail: string, name: string, value: ParamValue): string {
  return `${jail}: ${printParam(name, value)}`;
}
