// meta / env key operations with FreeBSD 15 semantics (sys/kern/kern_jailmeta.c).
// Pure functions over the buffer text; see ../../shared/spec/jail-meta.md.

/** One write to a meta or env buffer, in the order given on the command line. */
export type MetaOp =
  /** `meta="a b c"` replaces the whole buffer; `meta=` empties it. */
  | { op: 'replace'; value: string }
  /** `meta.KEY=VALUE`: remove every `KEY=` line, put `KEY=VALUE` first. */
  | { op: 'set'; key: string; value: string }
  /** `meta.KEY`: remove every `KEY=` line. */
  | { op: 'remove'; key: string };
