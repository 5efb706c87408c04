// The typed library API of jailyard: parsers, printers, selectors, planners.
export { JailyardError, ERROR_CODES, type ErrorCode, type ErrorPlace, type SourcePosition } from './errors.ts';
export type { JailSpec, Params, ParamValue } from './conf/spec.ts';
export type { MountPlan, MountStep, Strategy } from './skeleton/plan.ts';
export type { MetaOp } from './meta/ops.ts';
