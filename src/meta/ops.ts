// meta / env key operations with FreeBSD 15 semantics (sys/kern/kern_jailmeta.c).
// Pure functions over the buffer text; see ../../shared/spec/jail-meta.md.
//
// The kernel edits the buffer as a chain of "hunks" (slices of the old buffer and new
// key=value strings) and only joins them at the end. The exact bytes it produces in edge
// cases (trailing newlines, empty lines, a cut last line) follow from that model, so we
// mirror it hunk for hunk instead of re-deriving it from "lines".

import { JailyardError } from '../errors.ts';

/** One write to a meta or env buffer, in the order given on the command line. */
export type MetaOp =
  /** `meta="a b c"` replaces the whole buffer; `meta=` empties it. */
  | { op: 'replace'; value: string }
  /** `meta.KEY=VALUE`: remove every `KEY=` line, put `KEY=VALUE` first. */
  | { op: 'set'; key: string; value: string }
  /** `meta.KEY`: remove every `KEY=` line. */
  | { op: 'remove'; key: string };

/** The two metadata parameters. */
export type MetaParam = 'meta' | 'env';

/** security.jail.meta_maxbufsize's default: bytes, counting the trailing NUL. */
export const DEFAULT_META_MAXBUFSIZE = 4096;

const NUL = '\0';

/** Bytes the kernel stores for a buffer: the text plus its NUL; nothing for an empty one. */
export function metaBufferSize(buffer: string): number {
  return buffer === '' ? 0 : Buffer.byteLength(buffer) + 1;
}

/** C strings end at the first NUL: what the kernel would see of a JS string. */
function cString(s: string): string {
  const i = s.indexOf(NUL);
  return i < 0 ? s : s.slice(0, i);
}

function byteLen(s: string): number {
  return Buffer.byteLength(s);
}

/** jm_h_cut_line: drop the key=value line starting at `begin` of hunk `i`; keep what follows
 * as a new hunk right after it. */
function cutLine(chain: string[], i: number, begin: number): void {
  const h = chain[i]!;
  let end = begin;
  while (end + 1 < h.length) {
    if (h[end] === NUL || h[end] === '\n') break;
    end++;
  }
  if (end + 1 < h.length && h[end + 1] !== NUL) chain.splice(i + 1, 0, h.slice(end + 1));
  chain[i] = h.slice(0, begin);
}

/** jm_h_cut_occurrences: remove every line that starts with `key=` from every hunk. */
function cutOccurrences(chain: string[], key: string): void {
  let i = 0;
  let pos = 0;
  while (i < chain.length) {
    const h = chain[i]!;
    // strnstr does not look past a NUL
    const searchable = cString(h);
    const at = searchable.indexOf(key, pos);
    if (at < 0) {
      i++;
      pos = 0;
      continue;
    }
    if ((at === 0 || h[at - 1] === '\n') && h[at + key.length] === '=') {
      cutLine(chain, i, at);
      i++;
      pos = 0;
      continue;
    }
    pos = at + key.length;
    if (pos >= h.length) {
      i++;
      pos = 0;
    }
  }
}

/** jm_h_assemble + seal: join hunks (a NUL between hunks becomes a newline), drop the last byte. */
function assemble(chain: string[]): string {
  let out = '';
  for (let i = 0; i < chain.length; i++) {
    const h = chain[i]!;
    if (h.length === 0) continue;
    out += h;
    if (i + 1 < chain.length && out.endsWith(NUL)) out = `${out.slice(0, -1)}\n`;
  }
  // the kernel overwrites the last byte with the terminating NUL
  return out.slice(0, -1);
}

function tooLarge(what: string, size: number, maxBufSize: number, key?: string): JailyardError {
  return new JailyardError(
    'JY_ERR_META_TOO_LARGE',
    `${what} too large: ${size} bytes with the trailing NUL, meta_maxbufsize is ${maxBufSize}`,
    key === undefined ? {} : { key },
  );
}

/**
 * Applies `ops` in order to `buffer` exactly like jail_set(2) does in FreeBSD 15 and returns
 * the new buffer. Throws (and changes nothing) when a key is empty (JY_ERR_META_KEY) or when
 * a value or the result, counted with its trailing NUL, exceeds `maxBufSize`
 * (JY_ERR_META_TOO_LARGE, "too large" like jail(8) reports EFBIG).
 */
export function applyMetaOps(buffer: string, ops: readonly MetaOp[], maxBufSize: number): string {
  if (ops.length === 0) return buffer;
  const current = cString(buffer);
  let chain: string[] = current === '' ? [''] : [current + NUL];
  for (const op of ops) {
    if (op.op === 'replace') {
      const value = cString(op.value);
      const optLen = byteLen(value) + 1;
      if (optLen > maxBufSize) throw tooLarge('value', optLen, maxBufSize);
      // "avoid empty NULL-terminated string": an empty value is an empty hunk
      chain = [optLen > 1 ? value + NUL : ''];
      continue;
    }
    const key = cString(op.key);
    if (op.op === 'set') {
      const value = cString(op.value);
      const optLen = byteLen(value) + 1;
      if (optLen > maxBufSize) throw tooLarge('value', optLen, maxBufSize, key);
      if (key.length === 0) throw emptyKey();
      cutOccurrences(chain, key);
      chain.unshift(`${key}=${value}${NUL}`);
    } else {
      if (key.length === 0) throw emptyKey();
      cutOccurrences(chain, key);
    }
  }
  const size = chain.reduce((n, h) => n + byteLen(h), 0);
  if (size > maxBufSize) throw tooLarge('buffer', size, maxBufSize);
  return size > 1 ? assemble(chain) : '';
}

function emptyKey(): JailyardError {
  return new JailyardError('JY_ERR_META_KEY', 'empty key (use meta.KEY=VALUE with a non-empty KEY)', { key: '' });
}

/** Characters a key operation refuses: line breaks would add lines of their own (a label
 * `meta.note=$'x\ntier=admin'` injects `tier=admin`), a NUL would silently cut the value. */
const LINE_OR_NUL = /[\n\r\0]/;

/**
 * The per-key operations (`meta.KEY=VALUE`, `meta.KEY`, API `{op:"set"|"remove"}`) write one
 * line: refuses a key or value that would write more than that, or anything else than the
 * key (a key with `=`), before anything changes. JY_ERR_META_KEY naming the jail, the
 * parameter and the key. Whole-buffer writes (`meta="..."`) keep FreeBSD's semantics: any
 * text, newlines included, is the writer's own buffer.
 */
export function checkKeyOps(param: MetaParam, ops: readonly MetaOp[] | undefined, jail?: string): void {
  for (const op of ops ?? []) {
    if (op.op === 'replace') continue;
    const place = { ...(jail === undefined ? {} : { jail }), param, key: op.key };
    const shown = JSON.stringify(op.key);
    if (LINE_OR_NUL.test(op.key) || op.key.includes('=')) {
      throw new JailyardError(
        'JY_ERR_META_KEY',
        `${param} key ${shown} contains a line break, NUL or "=": a key operation writes exactly one KEY=VALUE line`,
        place,
      );
    }
    if (op.op === 'set' && LINE_OR_NUL.test(op.value)) {
      throw new JailyardError(
        'JY_ERR_META_KEY',
        `the value of ${param}.${op.key} contains a line break or NUL: a key operation writes exactly one line (write the whole buffer with ${param}="..." for text of several lines)`,
        place,
      );
    }
  }
}

/**
 * The value of `key` in a buffer, as `jls -j J meta.KEY` prints it; undefined when no line
 * starts with `KEY=`. Like the kernel's getter, when several lines carry the key the last one
 * wins (jailyard's own key writes never leave duplicates; only a whole-buffer write can).
 */
export function readMetaKey(buffer: string, key: string): string | undefined {
  if (key.length === 0) throw emptyKey();
  const text = cString(buffer);
  const prefix = `${key}=`;
  let found: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith(prefix)) found = line.slice(prefix.length);
  }
  return found;
}

/**
 * Reads one CLI word (`meta=...`, `meta`, `meta.k=v`, `meta.k`, and the same for `env`) as
 * jail(8) does: only the first `=` separates name and value. Returns undefined for words that
 * are not meta/env parameters. `meta.=x` / `meta.` throw JY_ERR_META_KEY.
 */
export function parseMetaWord(word: string): { param: MetaParam; op: MetaOp } | undefined {
  const eq = word.indexOf('=');
  const name = eq < 0 ? word : word.slice(0, eq);
  const value = eq < 0 ? undefined : word.slice(eq + 1);
  for (const param of ['meta', 'env'] as const) {
    if (name === param) return { param, op: { op: 'replace', value: value ?? '' } };
    if (name.startsWith(`${param}.`)) {
      const key = name.slice(param.length + 1);
      if (key.length === 0) {
        throw new JailyardError('JY_ERR_META_KEY', `empty key in "${word}" (use ${param}.KEY=VALUE)`, {
          param,
          key: '',
        });
      }
      return { param, op: value === undefined ? { op: 'remove', key } : { op: 'set', key, value } };
    }
  }
  return undefined;
}
