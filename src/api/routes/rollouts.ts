// /v1/rollouts: the rollouts saved in the daemon's state folder (`jailyard rollout` writes its
// progress to <state>/rollouts/<selector>.json after every step: src/lb/rollout.ts
// rolloutFileFor), read-only. A rollout runs in the CLI that started it, not in the daemon:
// this shows its steps as they are saved; it cannot start or abort one. A file that is not a
// rollout's (or is being replaced) is skipped.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import { ErrorBody } from '../schemas.ts';

/** Steps kept per rollout in an answer (the newest). */
const MAX_STEPS = 500;

export const RolloutViewSchema = Type.Object({
  selector: Type.String(),
  from: Type.String(),
  to: Type.String(),
  replicas: Type.Integer(),
  phase: Type.String({ description: 'running, done, failed, aborted or interrupted' }),
  created: Type.Array(Type.String(), { description: 'new jails this rollout created' }),
  removed: Type.Array(Type.String(), { description: 'old jails it removed' }),
  log: Type.Array(Type.Object({ at: Type.String(), text: Type.String() })),
  error: Type.Optional(Type.String()),
});

interface RolloutView {
  selector: string;
  from: string;
  to: string;
  replicas: number;
  phase: string;
  created: string[];
  removed: string[];
  log: { at: string; text: string }[];
  error?: string;
}

const str = (v: unknown): v is string => typeof v === 'string';
const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every(str);

/** The fields of a saved rollout the API shows, or undefined for anything else. */
export function rolloutView(data: unknown): RolloutView | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (!str(d.selector) || !str(d.from) || !str(d.to) || !str(d.phase)) return undefined;
  if (!Number.isSafeInteger(d.replicas) || !strings(d.created) || !strings(d.removed) || !Array.isArray(d.log))
    return undefined;
  const log = (d.log as unknown[])
    .filter((l): l is { at: string; text: string } => {
      const e = l as Record<string, unknown> | null;
      return typeof e === 'object' && e !== null && str(e.at) && str(e.text);
    })
    .slice(-MAX_STEPS)
    .map((l) => ({ at: l.at, text: l.text }));
  return {
    selector: d.selector,
    from: d.from,
    to: d.to,
    replicas: d.replicas as number,
    phase: d.phase,
    created: d.created,
    removed: d.removed,
    log,
    ...(str(d.error) ? { error: d.error } : {}),
  };
}

export const rolloutRoutes: FastifyPluginAsyncTypebox<{ stateDir: string }> = async (app, { stateDir }) => {
  app.get(
    '/v1/rollouts',
    {
      schema: {
        summary: "The rollouts saved in this host's state folder, with their steps (read-only)",
        response: { 200: Type.Object({ items: Type.Array(RolloutViewSchema) }), 500: ErrorBody },
      },
    },
    async () => {
      const dir = join(stateDir, 'rollouts');
      let names: string[];
      try {
        names = readdirSync(dir).filter((n) => n.endsWith('.json'));
      } catch {
        return { items: [] };
      }
      const items: RolloutView[] = [];
      for (const name of names.sort()) {
        try {
          const view = rolloutView(JSON.parse(readFileSync(join(dir, name), 'utf8')));
          if (view) items.push(view);
        } catch {
          // gone meanwhile, or not JSON
        }
      }
      return { items };
    },
  );
};
