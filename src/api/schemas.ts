// Request and response schemas (TypeBox = JSON Schema): they validate requests, serialize
// responses, type the handlers and make the OpenAPI document.

import { Type } from '@fastify/type-provider-typebox';
import { VIEW_FIELDS } from './view.ts';

export const ParamValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Array(Type.String())]);
export const Params = Type.Record(Type.String(), ParamValue, { description: 'jail(8) parameters, typed' });

export const MetaOp = Type.Union([
  Type.Object({ op: Type.Literal('replace'), value: Type.String() }, { additionalProperties: false }),
  Type.Object(
    { op: Type.Literal('set'), key: Type.String({ minLength: 1 }), value: Type.String() },
    { additionalProperties: false },
  ),
  Type.Object({ op: Type.Literal('remove'), key: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
]);

export const MetaInput = Type.Union([Type.String(), Type.Array(Type.Union([MetaOp, Type.String()]))], {
  description: 'a whole buffer, or operations: objects or words like "meta.k=v", "meta.k"',
});

const HealthStatus = Type.Union([Type.Literal('starting'), Type.Literal('healthy'), Type.Literal('unhealthy')]);
const RestartReason = Type.Union([Type.Literal('died'), Type.Literal('exited'), Type.Literal('unhealthy')]);

/** JailSupervision (src/store/types.ts): health detail and restarts (docs/health.md). */
const Supervision = Type.Object(
  {
    health: Type.Optional(
      Type.Object({
        status: HealthStatus,
        failingStreak: Type.Integer(),
        since: Type.String(),
        output: Type.Optional(Type.String()),
      }),
    ),
    restarts: Type.Integer(),
    streak: Type.Optional(Type.Integer()),
    lastStart: Type.Optional(Type.String()),
    lastReason: Type.Optional(RestartReason),
    pending: Type.Optional(Type.Object({ reason: RestartReason, at: Type.String(), attempt: Type.Integer() })),
  },
  { description: 'health detail and restarts (docs/health.md)' },
);

export const JailView = Type.Object({
  name: Type.String(),
  state: Type.Optional(
    Type.Union([Type.Literal('stopped'), Type.Literal('starting'), Type.Literal('running'), Type.Literal('stopping')]),
  ),
  jid: Type.Optional(Type.Integer()),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  meta: Type.Optional(Type.String()),
  env: Type.Optional(Type.String()),
  revision: Type.Optional(Type.Integer()),
  params: Type.Optional(Params),
  ready: Type.Optional(Type.Boolean()),
  lastError: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  createdAt: Type.Optional(Type.String()),
  updatedAt: Type.Optional(Type.String()),
  node: Type.Optional(Type.String({ description: 'cluster mode: the node the jail is placed on' })),
  health: Type.Optional(
    Type.Union([HealthStatus, Type.Null()], {
      description: "the health check's verdict while running (docs/health.md); null without one",
    }),
  ),
  supervision: Type.Optional(Type.Union([Supervision, Type.Null()])),
});

export const JailList = Type.Object({
  revision: Type.Integer({ description: 'global revision the list belongs to: watch with since=revision' }),
  items: Type.Array(JailView),
});

export const ErrorBody = Type.Object({
  code: Type.String(),
  message: Type.String(),
  jail: Type.Optional(Type.String()),
  param: Type.Optional(Type.String()),
  key: Type.Optional(Type.String()),
  step: Type.Optional(Type.String()),
  output: Type.Optional(Type.String()),
});

export const BatchResult = Type.Object({
  ok: Type.Boolean(),
  outcomes: Type.Array(
    Type.Object({
      name: Type.String(),
      status: Type.Union([Type.Literal('ok'), Type.Literal('failed'), Type.Literal('skipped')]),
      message: Type.Optional(Type.String()),
      code: Type.Optional(Type.String()),
    }),
  ),
  /** With `progress: true` in the request: what the CLI prints while it works (`jail: text`). */
  progress: Type.Optional(Type.Array(Type.Object({ jail: Type.String(), text: Type.String() }))),
});

export const BatchBody = Type.Object(
  {
    names: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    parallel: Type.Optional(Type.Integer({ minimum: 1 })),
    dryRun: Type.Optional(Type.Boolean()),
    progress: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const NameParams = Type.Object({ name: Type.String({ minLength: 1 }) });

const Flag = Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')]);

export const ListQuery = Type.Object({
  labelSelector: Type.Optional(Type.String({ description: 'Kubernetes label selector syntax' })),
  fields: Type.Optional(Type.String({ description: `comma-separated: ${VIEW_FIELDS.join(',')}` })),
  watch: Type.Optional(Flag),
  since: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'watch: resume after this revision' })),
  initial: Type.Optional(Flag),
});

export const CreateBody = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    params: Type.Optional(Params),
    meta: Type.Optional(MetaInput),
    env: Type.Optional(MetaInput),
  },
  { additionalProperties: false },
);

export const PatchBody = Type.Object(
  {
    params: Type.Optional(Params),
    unset: Type.Optional(Type.Array(Type.String())),
    meta: Type.Optional(MetaInput),
    env: Type.Optional(MetaInput),
  },
  { additionalProperties: false },
);

export const IfMatchHeaders = Type.Object({ 'if-match': Type.Optional(Type.String()) });

export function isFlagSet(v: string | undefined): boolean {
  return v === '1' || v === 'true';
}
