// The resolved form of one jail's configuration: what every later stage works from.
// Produced by the evaluator (jail.conf, rc.conf import, CLI `param=value` arguments, API
// bodies), consumed by the planner, the runtime and the store.

/** A typed parameter value: integers are numbers, booleans true/false, lists arrays. */
export type ParamValue = string | number | boolean | string[];

/** Parameters in definition order (object key order is the file's order). */
export type Params = Record<string, ParamValue>;

export interface JailSpec {
  /** The jail's name; "parent.child" for a nested jail. */
  name: string;
  /** Resolved, typed parameters, `name` included, in the order of the source. */
  params: Params;
}
