// Seeds for mutation: valid inputs from examples/ and from the tests' own string literals,
// and the mutation operators shared by the text targets.
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';

const root = new URL('../../../', import.meta.url);

/** Files below `dir` (relative to the repository) whose name ends with `ext`. */
export function filesOf(dir: string, ext: string): string[] {
  return readdirSync(new URL(dir, root), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(ext))
    .map((f) => readFileSync(new URL(`${dir}${dir.endsWith('/') ? '' : '/'}${f}`, root), 'utf8'));
}

const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '\\': '\\',
  "'": "'",
  '"': '"',
  '`': '`',
  '0': '\0',
};

/** The string literals of test sources ('...', "..." and `...` without ${}), unescaped. */
export function literalsOf(dir: string, keep: (s: string) => boolean): string[] {
  const out = new Set<string>();
  for (const src of filesOf(dir, '.ts')) {
    for (const m of src.matchAll(/'((?:[^'\\\n]|\\.)*)'|"((?:[^"\\\n]|\\.)*)"|`((?:[^`\\$]|\\.|\$(?!\{))*)`/g)) {
      const raw = m[1] ?? m[2] ?? m[3] ?? '';
      const s = raw.replace(/\\(.)/gs, (_, c: string) => ESCAPES[c] ?? c);
      if (keep(s)) out.add(s);
    }
  }
  return [...out];
}

/** 1 to `max` edits of a seed: insert a token, delete, duplicate or move a span, splice in
 * a piece of another seed, or put in a random character. */
export function mutated(seeds: string[], tokens: string[], max = 8): fc.Arbitrary<string> {
  const edit = fc.tuple(
    fc.nat({ max: 5 }),
    fc.nat(),
    fc.nat(),
    fc.nat({ max: 16 }),
    fc.constantFrom(...tokens),
    fc.nat(),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 2 }),
  );
  return fc.tuple(fc.constantFrom(...seeds), fc.array(edit, { minLength: 1, maxLength: max })).map(([seed, edits]) => {
    let s = seed;
    for (const [op, a, b, len, token, other, ch] of edits) {
      const i = a % (s.length + 1);
      const j = Math.min(s.length, i + len);
      switch (op) {
        case 0:
          s = s.slice(0, i) + token + s.slice(i);
          break;
        case 1:
          s = s.slice(0, i) + s.slice(j);
          break;
        case 2:
          s = s.slice(0, j) + s.slice(i, j) + s.slice(j);
          break;
        case 3: {
          const k = b % (s.length + 1);
          const piece = s.slice(i, j);
          const rest = s.slice(0, i) + s.slice(j);
          const at = Math.min(k, rest.length);
          s = rest.slice(0, at) + piece + rest.slice(at);
          break;
        }
        case 4: {
          const from = seeds[other % seeds.length]!;
          const f = b % (from.length + 1);
          s = s.slice(0, i) + from.slice(f, f + len * 4) + s.slice(i);
          break;
        }
        default:
          s = s.slice(0, i) + ch + s.slice(i + 1);
      }
    }
    return s;
  });
}

/** Raw bytes read as UTF-8 (invalid sequences become U+FFFD) or Latin-1, and strings with
 * lone surrogates and control characters. */
export function rawText(maxLength = 200): fc.Arbitrary<string> {
  return fc.oneof(
    fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('utf8')),
    fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('latin1')),
    fc.string({ unit: 'binary', maxLength }),
  );
}
