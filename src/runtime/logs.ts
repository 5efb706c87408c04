// Reading a jail's console log (`jailyard logs`, GET /v1/jails/:name/logs): the rotated file
// and the current one in order, from a time on (--since, through the time index jy-log keeps
// beside the log), the last N lines, and following it across rotations like `tail -F`.
//
// The log is the jail's output: hostile bytes. They are handed on as bytes (the CLI decides
// what a terminal gets, src/cli/commands/logs.ts); the files are opened without following a
// symlink and read only when they are regular files. The log lives in the host's state
// folder (state/jails/NAME/console.log, src/layout.ts), never in the jail's root.

import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, readFileSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { JailyardError } from '../errors.ts';

/** One record of the time index (native/jy-log.c, --index): the bytes from `offset` up to
 * the next record's offset were written between `first` and `last` (unix seconds). */
export interface IndexRecord {
  first: number;
  last: number;
  offset: number;
}

/** jy-log's record: "FIRST LAST OFFSET\n", fixed width. */
const IDX_REC = 35;

/** Parses a time index; records that do not read as one (a torn write) end it. */
export function parseIndex(text: string): IndexRecord[] {
  const out: IndexRecord[] = [];
  for (let at = 0; at + IDX_REC <= text.length; at += IDX_REC) {
    const m = /^(\d{10}) (\d{10}) (\d{12})\n$/.exec(text.slice(at, at + IDX_REC));
    if (!m) break;
    out.push({ first: Number(m[1]), last: Number(m[2]), offset: Number(m[3]) });
  }
  return out;
}

/**
 * Where a file's bytes written at or after `sinceMs` begin. With an index: the first run
 * whose last second is at or after since's second (to the second: a line written earlier in
 * that same second is shown too, a later one is never left out); bytes before the first
 * record (written before the index began) count as written before its first second. Without
 * one (a log from an older jy-log, an operator's file): the whole file if it changed since
 * then (mtime), else nothing.
 */
export function startOffset(index: IndexRecord[] | undefined, size: number, mtimeMs: number, sinceMs: number): number {
  const since = Math.floor(sinceMs / 1000);
  if (!index || index.length === 0) return mtimeMs >= sinceMs ? 0 : size;
  for (let i = 0; i < index.length; i++) {
    const r = index[i]!;
    if (r.last >= since) return Math.min(size, i === 0 && r.first >= since ? 0 : r.offset);
  }
  return size;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * --since: a duration back from `nowMs` (90s, 5m, 1h30m, 2d) or a time (ISO 8601:
 * 2026-12-02T22:00:00Z, 2026-12-02 22:00, a date; without a zone, the host's local time, as
 * Date.parse reads it) or unix seconds (@1796251794). Returns milliseconds since the epoch.
 */
export function parseSince(text: string, nowMs = Date.now()): number {
  const t = text.trim();
  if (/^(\d+(ms|s|m|h|d))+$/.test(t)) {
    let ms = 0;
    for (const m of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
    return nowMs - ms;
  }
  if (/^@\d+(\.\d+)?$/.test(t)) return Math.round(Number(t.slice(1)) * 1000);
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    const ms = Date.parse(t.replace(' ', 'T'));
    if (Number.isFinite(ms)) return ms;
  }
  throw new JailyardError(
    'JY_ERR_USAGE',
    `--since takes a duration (30s, 5m, 1h30m, 2d), a time (2026-12-02T22:00:00Z) or @UNIXSECONDS, not ${JSON.stringify(text)}`,
    { param: '--since' },
  );
}

export interface LogReadOptions {
  /** Only what was written at or after this time (ms since the epoch). */
  sinceMs?: number;
  /** Only the last N lines (of what --since leaves). */
  lines?: number;
  /** Go on with what is written later, across rotations, until `signal` aborts or the
   * jail's folder is gone (the jail was removed). */
  follow?: boolean;
  signal?: AbortSignal;
  /** How often a follower looks for new bytes (default 200 ms). */
  pollMs?: number;
}

const CHUNK = 64 << 10;

/** Opens a log file for reading: never through a symlink, never a FIFO or device (an open
 * alone could block or act), only a regular file. undefined when there is none. */
function openLog(path: string): { fd: number; st: Stats } | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    return undefined;
  }
  return { fd, st };
}

function readIndex(path: string): IndexRecord[] | undefined {
  const f = openLog(path);
  if (!f) return undefined;
  try {
    return parseIndex(readFileSync(f.fd, 'latin1'));
  } finally {
    closeSync(f.fd);
  }
}

function readRange(fd: number, from: number, to: number): Buffer {
  const buf = Buffer.alloc(Math.max(0, to - from));
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, from + got);
    if (n <= 0) break;
    got += n;
  }
  return got === buf.length ? buf : buf.subarray(0, got);
}

interface Segment {
  fd: number;
  start: number;
  end: number;
}

/** Moves the segments' starts so that only the last `n` lines remain (a last line without
 * its newline counts as one). */
function keepLastLines(segments: Segment[], n: number): void {
  if (n <= 0) {
    for (const seg of segments) seg.start = seg.end;
    return;
  }
  let seen = 0;
  let trailing = true;
  for (let s = segments.length - 1; s >= 0; s--) {
    const seg = segments[s]!;
    let pos = seg.end;
    while (pos > seg.start) {
      const from = Math.max(seg.start, pos - CHUNK);
      const buf = readRange(seg.fd, from, pos);
      for (let i = buf.length - 1; i >= 0; i--) {
        if (buf[i] !== 0x0a) {
          trailing = false;
          continue;
        }
        // the newline that ends the very last line does not start a line of its own
        if (trailing) {
          trailing = false;
          continue;
        }
        if (++seen >= n) {
          seg.start = from + i + 1;
          for (let k = 0; k < s; k++) segments[k]!.start = segments[k]!.end;
          return;
        }
      }
      pos = from;
    }
  }
}

/** Waits `ms`, or less when `signal` aborts (resolves either way: the caller checks it). */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  delay(ms, undefined, { signal }).catch(() => undefined);

/** The inode of what is at `path` now (never followed), or undefined. */
function inodeAt(path: string): number | undefined {
  try {
    const st = lstatSync(path);
    return st.isFile() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A jail's console log as a stream of byte chunks: `log`.1 then `log` (from --since, the last
 * N lines), then with `follow` what comes later: a rotation (the file at the name changed)
 * first finishes the old file, then reads a file rotated in between if there was one, then
 * the new one from its start; a file that shrank is read again from its start.
 */
export async function* readConsoleLog(log: string, opts: LogReadOptions = {}): AsyncGenerator<Buffer> {
  const open: number[] = [];
  try {
    const segments: Segment[] = [];
    for (const path of [`${log}.1`, log]) {
      const f = openLog(path);
      if (!f) continue;
      open.push(f.fd);
      const start =
        opts.sinceMs === undefined ? 0 : startOffset(readIndex(`${path}.idx`), f.st.size, f.st.mtimeMs, opts.sinceMs);
      segments.push({ fd: f.fd, start, end: f.st.size });
    }
    if (opts.lines !== undefined) keepLastLines(segments, opts.lines);
    for (const seg of segments) {
      for (let at = seg.start; at < seg.end; ) {
        const buf = readRange(seg.fd, at, Math.min(seg.end, at + CHUNK));
        if (buf.length === 0) break;
        at += buf.length;
        yield buf;
      }
    }
    if (!opts.follow) return;

    // Following: from where the first part ended (a rotation since is seen below).
    const last = segments.at(-1);
    let fd = last?.fd;
    let pos = last?.end ?? 0;
    const pollMs = opts.pollMs ?? 200;
    const close = (f: number): void => {
      open.splice(open.indexOf(f), 1);
      closeSync(f);
    };
    const drain = function* (from: number): Generator<Buffer> {
      for (;;) {
        const size = fstatSync(from).size;
        if (size < pos) pos = 0; // truncated: read it again from its start
        if (pos >= size) return;
        const buf = readRange(from, pos, Math.min(size, pos + CHUNK));
        if (buf.length === 0) return;
        pos += buf.length;
        yield buf;
      }
    };
    while (!opts.signal?.aborted) {
      if (fd !== undefined) yield* drain(fd);
      if (opts.signal?.aborted) return;
      const now = inodeAt(log);
      if (now === undefined || fd === undefined || now !== fstatSync(fd).ino) {
        if (fd !== undefined && now !== undefined) {
          // rotated: the old file's last bytes (written before the exchange), then a file
          // rotated in between two looks (at .1 now, neither the old one nor the new one)
          const oldIno = fstatSync(fd).ino;
          yield* drain(fd);
          close(fd);
          fd = undefined;
          const between = inodeAt(`${log}.1`);
          if (between !== undefined && between !== oldIno && between !== now) {
            const f = openLog(`${log}.1`);
            if (f) {
              open.push(f.fd);
              pos = 0;
              yield* drain(f.fd);
              close(f.fd);
            }
          }
        }
        if (now !== undefined && fd === undefined) {
          const f = openLog(log);
          if (f) {
            open.push(f.fd);
            fd = f.fd;
            pos = 0;
            continue;
          }
        }
        // no log (yet, or for a moment during a rotation): a jail's folder that is gone
        // means the jail was removed
        if (now === undefined && !isDir(dirname(log))) return;
      }
      await sleep(pollMs, opts.signal);
    }
  } finally {
    for (const fd of open) {
      try {
        closeSync(fd);
      } catch {
        // closed
      }
    }
  }
}

function isDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}
