// Kubernetes label selectors (k8s.io/apimachinery/pkg/labels/selector.go), same syntax, same
// validation, same matching, same canonical string:
//   app=www,version in (v1,v2),!canary,tier!=db,replicas>2
// A requirement list is an AND; `!=` and `notin` also match when the key is absent.

import { JailyardError } from '../errors.ts';

/** The operators, spelled like k8s' selection.Operator. */
export type SelectorOperator = '=' | '==' | '!=' | 'in' | 'notin' | 'exists' | '!' | 'gt' | 'lt';

export interface Requirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  /** Sorted, without duplicates; one value for =, ==, !=, gt, lt; none for exists and !. */
  readonly values: readonly string[];
}

export interface Selector {
  /** Requirements sorted by key (stable), as k8s does for a deterministic result. */
  readonly requirements: readonly Requirement[];
  matches(labels: Readonly<Record<string, string>>): boolean;
  /** Canonical form: `x in (a,b),y!=c,!z`. */
  toString(): string;
  /** True for the empty selector, which matches everything. */
  isEverything(): boolean;
}

// ---------------------------------------------------------------- validation (k8s content)

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const NAME_CHARS =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/** Why `key` is not a valid label key (empty list: it is valid). */
export function labelKeyErrors(key: string): string[] {
  const parts = key.split('/');
  let name: string;
  const errs: string[] = [];
  if (parts.length === 1) {
    name = parts[0]!;
  } else if (parts.length === 2) {
    const prefix = parts[0]!;
    name = parts[1]!;
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else {
      if (prefix.length > 253) errs.push('prefix part must be no more than 253 characters');
      if (!DNS1123_SUBDOMAIN.test(prefix)) {
        errs.push(
          "prefix part must be a lowercase RFC 1123 subdomain: lowercase alphanumerics, '-' and '.', starting and ending with an alphanumeric",
        );
      }
    }
  } else {
    return [
      `a qualified name must be a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push('name part must be no more than 63 characters');
  if (name.length > 0 && !QUALIFIED_NAME.test(name)) errs.push(`name part ${NAME_CHARS}`);
  return errs;
}

const LABEL_KEY = new RegExp(
  `^(?:${DNS1123_LABEL}(?:\\.${DNS1123_LABEL})*/)?(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`,
);

/** labelKeyErrors(key) is empty, without building messages (labels.ts asks it per line). */
export function isLabelKey(key: string): boolean {
  if (key.length === 0 || key.length > 253 + 1 + 63 || !LABEL_KEY.test(key)) return false;
  const slash = key.indexOf('/');
  return slash < 0 ? key.length <= 63 : slash <= 253 && key.length - slash - 1 <= 63;
}

/** Why `value` is not a valid label value (empty list: it is valid; '' is valid). */
export function labelValueErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push('must be no more than 63 characters');
  if (!LABEL_VALUE.test(value))
    errs.push(`a valid label value must be empty or ${NAME_CHARS.replace('must consist', 'consist')}`);
  return errs;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Go's strconv.ParseInt(s, 10, 64); undefined where it would fail. */
function parseInt64(s: string): bigint | undefined {
  if (!/^[+-]?[0-9]+$/.test(s)) return undefined;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}

// ---------------------------------------------------------------- matching and printing

function requirementMatches(r: Requirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const value = has ? labels[r.key]! : undefined;
  switch (r.operator) {
    case '=':
    case '==':
    case 'in':
      return value !== undefined && r.values.includes(value);
    case '!=':
    case 'notin':
      return value === undefined || !r.values.includes(value);
    case 'exists':
      return has;
    case '!':
      return !has;
    case 'gt':
    case 'lt': {
      if (value === undefined || r.values.length !== 1) return false;
      const have = parseInt64(value);
      const want = parseInt64(r.values[0]!);
      if (have === undefined || want === undefined) return false;
      return r.operator === 'gt' ? have > want : have < want;
    }
  }
}

const OP_TEXT: Record<SelectorOperator, string> = {
  '=': '=',
  '==': '==',
  '!=': '!=',
  in: ' in ',
  notin: ' notin ',
  gt: '>',
  lt: '<',
  exists: '',
  '!': '',
};

export function requirementToString(r: Requirement): string {
  if (r.operator === '!') return `!${r.key}`;
  if (r.operator === 'exists') return r.key;
  const values = [...r.values].sort(compareStrings).join(',');
  const set = r.operator === 'in' || r.operator === 'notin';
  return r.key + OP_TEXT[r.operator] + (set ? `(${values})` : values);
}

/** Go's byte order for ASCII; UTF-16 order otherwise (labels are ASCII by validation). */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

class RequirementsSelector implements Selector {
  readonly requirements: readonly Requirement[];
  constructor(requirements: Requirement[]) {
    this.requirements = requirements;
  }
  matches(labels: Readonly<Record<string, string>>): boolean {
    for (const r of this.requirements) if (!requirementMatches(r, labels)) return false;
    return true;
  }
  toString(): string {
    return this.requirements.map(requirementToString).join(',');
  }
  isEverything(): boolean {
    return this.requirements.length === 0;
  }
}

// ---------------------------------------------------------------- lexer

type Token = 'error' | 'end' | ')' | ',' | '!' | '==' | '=' | '>' | 'identifier' | 'in' | '<' | '!=' | 'notin' | '(';

interface Scanned {
  tok: Token;
  lit: string;
  /** 0-based offset of the token's first character (the end of the string for 'end'). */
  at: number;
}

const LITERAL_TOKENS: ReadonlyMap<string, Token> = new Map<string, Token>([
  [')', ')'],
  [',', ','],
  ['!', '!'],
  ['==', '=='],
  ['=', '='],
  ['>', '>'],
  ['in', 'in'],
  ['<', '<'],
  ['!=', '!='],
  ['notin', 'notin'],
  ['(', '('],
]);

const isWhitespace = (ch: string): boolean => ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
const isSpecial = (ch: string): boolean => '=!(),><'.includes(ch) && ch.length === 1;

function lex(s: string): Scanned[] {
  const items: Scanned[] = [];
  let pos = 0;
  for (;;) {
    while (pos < s.length && isWhitespace(s[pos]!)) pos++;
    const at = pos;
    if (pos >= s.length) {
      items.push({ tok: 'end', lit: '', at });
      return items;
    }
    if (isSpecial(s[pos]!)) {
      // longest special-symbol token, like k8s' scanSpecialSymbol
      let buffer = '';
      let last: { tok: Token; lit: string } | undefined;
      while (pos < s.length && isSpecial(s[pos]!)) {
        buffer += s[pos];
        const tok = LITERAL_TOKENS.get(buffer);
        if (tok) {
          last = { tok, lit: buffer };
          pos++;
        } else if (last) {
          break;
        } else {
          pos++;
        }
      }
      items.push(last ? { ...last, at } : { tok: 'error', lit: `error expected: keyword found '${buffer}'`, at });
      continue;
    }
    let lit = '';
    while (pos < s.length && !isSpecial(s[pos]!) && !isWhitespace(s[pos]!)) lit += s[pos++];
    const tok = LITERAL_TOKENS.get(lit);
    items.push({ tok: tok ?? 'identifier', lit, at });
  }
}

// ---------------------------------------------------------------- parser

type Context = 'keyAndOperator' | 'values';

class Parser {
  readonly source: string;
  readonly items: Scanned[];
  position = 0;

  constructor(source: string) {
    this.source = source;
    this.items = lex(source);
  }

  private view(item: Scanned, ctx: Context): Scanned {
    // in and notin are plain identifiers where a value is expected (`x in (in)`)
    if (ctx === 'values' && (item.tok === 'in' || item.tok === 'notin')) return { ...item, tok: 'identifier' };
    return item;
  }

  lookahead(ctx: Context): Scanned {
    return this.view(this.items[this.position]!, ctx);
  }

  consume(ctx: Context): Scanned {
    const item = this.items[this.position]!;
    if (this.position < this.items.length - 1) this.position++;
    return this.view(item, ctx);
  }

  fail(message: string, at: number): JailyardError {
    const col = at + 1;
    const excerpt = `${this.source}\n${' '.repeat(at)}^`;
    return new JailyardError('JY_ERR_SELECTOR', `invalid label selector at column ${col}: ${message}`, {
      pos: { file: '<selector>', line: 1, col },
      excerpt,
    });
  }

  parse(): Requirement[] {
    const requirements: Requirement[] = [];
    for (;;) {
      const t = this.lookahead('values');
      if (t.tok === 'end') return requirements;
      if (t.tok !== 'identifier' && t.tok !== '!') {
        throw this.fail(`found '${t.lit}', expected: !, identifier, or 'end of string'`, t.at);
      }
      requirements.push(this.parseRequirement());
      const next = this.consume('values');
      if (next.tok === 'end') return requirements;
      if (next.tok !== ',') throw this.fail(`found '${next.lit}', expected: ',' or 'end of string'`, next.at);
      const after = this.lookahead('values');
      if (after.tok !== 'identifier' && after.tok !== '!') {
        throw this.fail(`found '${after.lit}', expected: identifier after ','`, after.at);
      }
    }
  }

  private parseRequirement(): Requirement {
    const { key, operator: inferred } = this.parseKeyAndInferOperator();
    if (inferred === 'exists' || inferred === '!') return { key, operator: inferred, values: [] };
    const opItem = this.consume('keyAndOperator');
    const operator = OPERATOR_OF_TOKEN.get(opItem.tok);
    if (!operator) {
      throw this.fail(`found '${opItem.lit}', expected: in, notin, =, ==, !=, gt, lt`, opItem.at);
    }
    const valuesAt = this.lookahead('values').at;
    const values = operator === 'in' || operator === 'notin' ? this.parseValues() : this.parseExactValue();
    const sorted = [...values].sort(compareStrings);
    this.validateValues(key, operator, sorted, valuesAt);
    return { key, operator, values: sorted };
  }

  private validateValues(key: string, operator: SelectorOperator, values: string[], at: number): void {
    if ((operator === 'gt' || operator === 'lt') && values.some((v) => parseInt64(v) === undefined)) {
      throw this.fail(`for 'gt', 'lt' operators, the value must be an integer (key "${key}")`, at);
    }
    for (const v of values) {
      const errs = labelValueErrors(v);
      if (errs.length) throw this.fail(`invalid value "${v}" for key "${key}": ${errs.join('; ')}`, at);
    }
  }

  private parseKeyAndInferOperator(): { key: string; operator: SelectorOperator | undefined } {
    let operator: SelectorOperator | undefined;
    let t = this.consume('values');
    if (t.tok === '!') {
      operator = '!';
      t = this.consume('values');
    }
    if (t.tok !== 'identifier') throw this.fail(`found '${t.lit}', expected: identifier`, t.at);
    const errs = labelKeyErrors(t.lit);
    if (errs.length) throw this.fail(`invalid key "${t.lit}": ${errs.join('; ')}`, t.at);
    const next = this.lookahead('values');
    if ((next.tok === 'end' || next.tok === ',') && operator !== '!') operator = 'exists';
    return { key: t.lit, operator };
  }

  private parseValues(): Set<string> {
    const open = this.consume('values');
    if (open.tok !== '(') throw this.fail(`found '${open.lit}' expected: '('`, open.at);
    const t = this.lookahead('values');
    if (t.tok === 'identifier' || t.tok === ',') {
      const s = this.parseIdentifiersList();
      const close = this.consume('values');
      if (close.tok !== ')') throw this.fail(`found '${close.lit}', expected: ')'`, close.at);
      return s;
    }
    if (t.tok === ')') {
      this.consume('values');
      return new Set(['']);
    }
    throw this.fail(`found '${t.lit}', expected: ',', ')' or identifier`, t.at);
  }

  private parseIdentifiersList(): Set<string> {
    const s = new Set<string>();
    for (;;) {
      const t = this.consume('values');
      if (t.tok === 'identifier') {
        s.add(t.lit);
        const t2 = this.lookahead('values');
        if (t2.tok === ',') continue;
        if (t2.tok === ')') return s;
        throw this.fail(`found '${t2.lit}', expected: ',' or ')'`, t2.at);
      }
      if (t.tok === ',') {
        // "(,", ",)" and ",," all stand for the empty value
        if (s.size === 0) s.add('');
        const t2 = this.lookahead('values');
        if (t2.tok === ')') {
          s.add('');
          return s;
        }
        if (t2.tok === ',') s.add('');
        continue;
      }
      throw this.fail(`found '${t.lit}', expected: ',', or identifier`, t.at);
    }
  }

  private parseExactValue(): Set<string> {
    const t = this.lookahead('values');
    if (t.tok === 'end' || t.tok === ',') return new Set(['']);
    const v = this.consume('values');
    if (v.tok === 'identifier') return new Set([v.lit]);
    throw this.fail(`found '${v.lit}', expected: identifier`, v.at);
  }
}

const OPERATOR_OF_TOKEN: ReadonlyMap<Token, SelectorOperator> = new Map<Token, SelectorOperator>([
  ['in', 'in'],
  ['=', '='],
  ['==', '=='],
  ['>', 'gt'],
  ['<', 'lt'],
  ['notin', 'notin'],
  ['!=', '!='],
]);

/**
 * Parses a label selector with Kubernetes' grammar and validation. Throws JY_ERR_SELECTOR with
 * the 1-based column of the offending token (place.pos.col, place.excerpt with a caret).
 */
export function parseSelector(selector: string): Selector {
  const requirements = new Parser(selector).parse();
  // stable sort by key, like k8s' sort.Sort(ByKey) for a deterministic result
  requirements.sort((a, b) => compareStrings(a.key, b.key));
  return new RequirementsSelector(requirements);
}

/** The selector that matches every jail (the empty string). */
export function everything(): Selector {
  return new RequirementsSelector([]);
}
