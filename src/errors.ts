// One error type for the whole project. Every error has a stable code (listed, with its
// meaning and HTTP status, in docs/errors.md), a message that says what failed, and the
// place it concerns: a file position, a jail, a parameter, a metadata key, a step.

/** Where an error happened in a configuration file (1-based line and column). */
export interface SourcePosition {
  file: string;
  line: number;
  col: number;
}

export interface ErrorPlace {
  /** file:line:col of the offending text. */
  pos?: SourcePosition;
  /** The jail the error is about. */
  jail?: string;
  /** The jail parameter the error is about. */
  param?: string;
  /** The meta/env key the error is about. */
  key?: string;
  /** The lifecycle step that failed (exec.prestart, mount, create, ...). */
  step?: string;
  /** Output of a failed command (stderr, then stdout), trimmed. */
  output?: string;
  /** An excerpt of the source with a caret under the column. */
  excerpt?: string;
}

/**
 * Stable error codes. Each module adds its own here (one registry, one doc: docs/errors.md).
 * The value is the HTTP status the API answers with.
 */
export const ERROR_CODES = {
  // generic
  JY_ERR_INTERNAL: 500,
  JY_ERR_USAGE: 400,
  JY_ERR_NOT_ROOT: 403,
  // jail.conf / rc.conf (src/conf)
  JY_ERR_CONF_SYNTAX: 400,
  JY_ERR_CONF_INCLUDE: 400,
  JY_ERR_CONF_VARIABLE: 400,
  JY_ERR_PARAM_UNKNOWN: 400,
  JY_ERR_PARAM_VALUE: 400,
  JY_ERR_JAIL_NAME: 400,
  // meta/env and selectors (src/meta)
  JY_ERR_META_KEY: 400,
  JY_ERR_META_TOO_LARGE: 413,
  JY_ERR_SELECTOR: 400,
  // store and lifecycle (src/store, src/runtime)
  JY_ERR_JAIL_EXISTS: 409,
  JY_ERR_JAIL_NOT_FOUND: 404,
  JY_ERR_REVISION_CONFLICT: 412,
  JY_ERR_REVISION_GONE: 410,
  JY_ERR_INVALID_TRANSITION: 409,
  JY_ERR_STEP_FAILED: 500,
  JY_ERR_DEPEND: 424,
  JY_ERR_ADDRESS: 400,
  // a host port (expose) that a running jail of any state folder publishes already, or a
  // host process listens on
  JY_ERR_PORT_IN_USE: 409,
  // skeletons and mounts (src/skeleton)
  JY_ERR_SKELETON_NOT_FOUND: 404,
  JY_ERR_SKELETON_IN_USE: 409,
  JY_ERR_PATH: 400,
  JY_ERR_MOUNT: 500,
  JY_ERR_UPGRADE_CONFLICT: 409,
  JY_ERR_SKELETON_CREATE: 500,
  // a container image (skel create --oci-archive) that is invalid or unsafe
  JY_ERR_IMAGE: 400,
  // platform
  JY_ERR_PLATFORM: 500,
  // the state store (src/store): full disk, locked or read-only file; nothing was changed
  JY_ERR_STORE: 503,
  // API
  JY_ERR_UNAUTHORIZED: 401,
  JY_ERR_BODY_TOO_LARGE: 413,
  JY_ERR_ROUTE_NOT_FOUND: 404,
  JY_ERR_DAEMON_UNREACHABLE: 503,
  // load balancer and rollout (src/lb)
  JY_ERR_HAPROXY: 502,
  JY_ERR_UNHEALTHY: 503,
  JY_ERR_ROLLOUT: 409,
  // the CLI process was stopped by a signal (SIGINT, SIGTERM, SIGHUP) before it finished
  JY_ERR_INTERRUPTED: 503,
  // cluster mode (src/cluster): etcd unreachable or without quorum; nothing was changed
  JY_ERR_CLUSTER: 503,
  // a record read from etcd is not valid (written by something else, or corrupted)
  JY_ERR_CLUSTER_RECORD: 500,
  // a node cannot register: its name is held by another live node or its range overlaps one
  JY_ERR_NODE_CONFLICT: 409,
  // no live node can take the jail (name, selector, capacity, addresses)
  JY_ERR_NO_NODE: 409,
  // a node's copy of a skeleton version differs from the cluster's (same name@version)
  JY_ERR_SKELETON_MISMATCH: 409,
  // export/import (src/portable): an archive that is not jailyard's, or that is hostile
  // (paths leaving the target, links escaping it, sizes beyond the limits); nothing was made
  JY_ERR_ARCHIVE: 400,
  // snapshots (src/portable/snapshot.ts): no snapshot of that name
  JY_ERR_SNAPSHOT_NOT_FOUND: 404,
  // snapshot, clone, rollback (src/portable/tree.ts): the copy needs more space or inodes than
  // the destination's filesystem has free; nothing was copied
  JY_ERR_NO_SPACE: 507,
  // /v1/rollouts/ID/...: no saved rollout of that id in the daemon's state folder
  JY_ERR_ROLLOUT_NOT_FOUND: 404,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class JailyardError extends Error {
  readonly code: ErrorCode;
  readonly place: ErrorPlace;

  constructor(code: ErrorCode, message: string, place: ErrorPlace = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JailyardError';
    this.code = code;
    this.place = place;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code];
  }

  /** The message with its place first, the way jail(8) names the jail first. The output
   * (often a jail's own: a hook run inside it) is shown printable, never as terminal controls. */
  describe(): string {
    const p = this.place;
    const where: string[] = [];
    if (p.pos) where.push(`${p.pos.file}:${p.pos.line}:${p.pos.col}`);
    if (p.jail) where.push(`jail "${p.jail}"`);
    if (p.param) where.push(`parameter "${p.param}"`);
    if (p.key) where.push(`key "${p.key}"`);
    if (p.step) where.push(`step ${p.step}`);
    let text = where.length ? `${where.join(', ')}: ${this.message}` : this.message;
    if (p.excerpt) text += `\n${p.excerpt}`;
    if (p.output) text += `\n${printable(p.output)}`;
    return text;
  }

  toJSON(): { code: ErrorCode; message: string } & ErrorPlace {
    return { code: this.code, message: this.message, ...this.place };
  }
}

/**
 * What a terminal may be shown of a jail's bytes: control characters other than newline and
 * tab (ESC, CSI and the rest of C0 and C1, DEL, a carriage return that does not end a line)
 * become visible escapes (\x1b, \u009b, \r), so a jail cannot move the cursor, retitle the
 * window, change the colours for what follows or write into the terminal's answerback;
 * bytes that are not UTF-8 become U+FFFD. Everything else passes as it is.
 */
export function printable(text: string): string {
  return text.replace(/\r(?!\n)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g, escapeControl);
}

/** Every control character, newline and tab included. */
export const CONTROL_CHARACTER = /[\x00-\x1f\x7f-\x9f]/;

/**
 * A value a jail chose (its hostname, a meta or env value), made fit for one field of a
 * listing on a terminal: as printable(), and newline and tab escaped too (\n, \t), since in
 * a field they would start a line or a column the jail made up.
 */
export function printableValue(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, escapeControl);
}

function escapeControl(c: string): string {
  if (c === '\r') return '\\r';
  if (c === '\n') return '\\n';
  if (c === '\t') return '\\t';
  const code = c.charCodeAt(0);
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

export function isJailyardError(e: unknown): e is JailyardError {
  return e instanceof JailyardError;
}

/**
 * The one text for any error shown to a user or kept in a log or outcome: a JailyardError's
 * describe() (place first), another Error's message (with its name unless it is a plain
 * Error: "TypeError: ..."), anything else as a string.
 */
export function describeError(e: unknown): string {
  if (e instanceof JailyardError) return e.describe();
  if (e instanceof Error) return e.name === 'Error' ? e.message : String(e);
  return String(e);
}

/**
 * The same error with more context, as a new error whose `cause` is the original: text
 * `before`/`after` its message (what was being done, what undoing it left) and `place` fields
 * the caller knows better (the jail, the parameter). Errors are never changed in place, so
 * one shared or already reported keeps the text its thrower gave it.
 */
export function withContext(
  e: JailyardError,
  more: { before?: string; after?: string; place?: ErrorPlace },
): JailyardError {
  const message = `${more.before ?? ''}${e.message}${more.after ?? ''}`;
  return new JailyardError(e.code, message, { ...e.place, ...more.place }, { cause: e });
}
