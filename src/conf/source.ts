// Source positions and the caret excerpts that errors carry: every token and node of a
// jail.conf knows its file:line:col so each error can point at the offending text.

import { JailyardError, type ErrorCode, type ErrorPlace, type SourcePosition } from '../errors.ts';

/** The text of every file read so far, so an error can quote the line it is about. */
export class SourceTexts {
  readonly #texts = new Map<string, string>();

  add(file: string, text: string): void {
    this.#texts.set(file, text);
  }

  /** The line of `pos` with a caret under its column (tabs kept so the caret lines up). */
  excerpt(pos: SourcePosition): string | undefined {
    const text = this.#texts.get(pos.file);
    if (text === undefined) return undefined;
    const line = text.split('\n')[pos.line - 1];
    if (line === undefined) return undefined;
    const shown = line.replace(/\r$/, '');
    const pad = shown.slice(0, Math.max(0, pos.col - 1)).replace(/[^\t]/g, ' ');
    return `  ${shown}\n  ${pad}^`;
  }

  /** A JailyardError at `pos`, with the excerpt filled in. */
  error(
    code: ErrorCode,
    message: string,
    pos: SourcePosition,
    place: Omit<ErrorPlace, 'pos' | 'excerpt'> = {},
  ): JailyardError {
    const excerpt = this.excerpt(pos);
    return new JailyardError(code, message, { ...place, pos, ...(excerpt !== undefined ? { excerpt } : {}) });
  }
}
