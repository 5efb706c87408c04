// The typed library API of jailyard: parsers, printers, selectors, planners.
export { JailyardError, ERROR_CODES, type ErrorCode, type ErrorPlace, type SourcePosition } from './errors.ts';
export type { JailSpec, Params, ParamValue } from './conf/spec.ts';
export { parseConfString, loadConf, evaluate, wildcardMatches, type EvaluatedConf } from './conf/evaluate.ts';
export { parseConf, type ParseOptions, type IncludeLoader, type IncludedFile } from './conf/parser.ts';
export { printConf, quoteValue } from './conf/printer.ts';
export { importRcConf, importRcConfSpecs, type ImportRcOptions } from './conf/rcconf.ts';
export {
  PARAMS,
  findParam,
  resolveParamName,
  suggestParams,
  parseParamAssignment,
  type ParamDef,
  type ParamType,
  type ParamFlags,
  type ParamAssignment,
} from './conf/params.ts';
export type { MountPlan, MountStep, Strategy } from './skeleton/plan.ts';
export {
  planMounts,
  appendMounts,
  skeletonLists,
  STRATEGIES,
  type PlanInput,
  type SkeletonLayout,
  type LayoutEntry,
  type SkeletonLists,
} from './skeleton/planner.ts';
export { readLayout } from './skeleton/layout.ts';
export { seedWritable, copyTree, type SeedRules, type SeedOptions, type SeedResult } from './skeleton/writable.ts';
export { resolveInRoot } from './skeleton/paths.ts';
export {
  planUpgrade,
  applyUpgrade,
  upgradeWritable,
  snapshotTree,
  snapshotPaths,
  type UpgradeAction,
  type UpgradeResult,
  type TreeSnapshot,
} from './skeleton/merge.ts';
export { merge3, type Merge3Result } from './skeleton/diff3.ts';
export {
  createSkeleton,
  listSkeletons,
  showSkeleton,
  resolveSkeleton,
  removeSkeleton,
  verifySkeleton,
  parseSkeletonRef,
  usedVersion,
  type Skeleton,
  type SkeletonVersion,
  type SkeletonSource,
} from './skeleton/registry.ts';
export type { MetaOp } from './meta/ops.ts';
// meta/env (FreeBSD 15 kern_jailmeta.c semantics), labels, Kubernetes label selectors, the store
export {
  applyMetaOps,
  readMetaKey,
  parseMetaWord,
  metaBufferSize,
  DEFAULT_META_MAXBUFSIZE,
  type MetaParam,
} from './meta/ops.ts';
export { labelsOf } from './meta/labels.ts';
export {
  parseSelector,
  labelKeyErrors,
  labelValueErrors,
  type Selector,
  type Requirement,
  type SelectorOperator,
} from './meta/selector.ts';
export { openStore, SqliteStore, type OpenStoreOptions } from './store/sqlite.ts';
export { validateJailName } from './store/names.ts';
// HTTP API: the daemon's app, its client (a JailService over HTTP) and the resumable watch
export { buildApp, type AppOptions } from './api/app.ts';
export { startDaemon, type Daemon, type DaemonOptions } from './api/daemon.ts';
export { createRemoteService, watch, type RemoteOptions, type WatchEvent, type WatchOptions } from './api/client.ts';
export type { JailView } from './api/view.ts';
// FreeBSD driver: safe to load on Linux (it only spawns FreeBSD tools when called)
export {
  createFreeBSDDriver,
  createExecRunner,
  parseJlsJson,
  parseMountP,
  parseRctl,
  type FreeBSDDriver,
  type FreeBSDDriverOptions,
  type CommandRunner,
  type JlsJail,
} from './platform/freebsd/index.ts';
