// FreeBSD 15's native meta/env (jail -m, jls) and the host's jail list.

import { JailyardError } from '../../errors.ts';
import type { MetaOp } from '../../meta/ops.ts';
import type { JailContext } from '../driver.ts';
import { metaArgs } from './params.ts';
import type { JlsJail } from './parse.ts';
import { type FreeBSDHost, jls, outputOf, SYSTEM } from './system.ts';
import { TOOLS } from './tools.ts';

/** `jail -m name=J meta.k=v env=...`, in the order given. */
export async function applyMeta(
  host: FreeBSDHost,
  ctx: JailContext,
  ops: { meta?: MetaOp[]; env?: MetaOp[] },
): Promise<void> {
  const args = [...metaArgs('meta', ops.meta ?? [], ctx.name), ...metaArgs('env', ops.env ?? [], ctx.name)];
  if (args.length === 0) return;
  const r = await host.runner.run([TOOLS.jail, '-m', `name=${ctx.name}`, ...args], SYSTEM);
  if (r.code !== 0) {
    const code = /too large/i.test(r.stderr) ? 'JY_ERR_META_TOO_LARGE' : 'JY_ERR_STEP_FAILED';
    throw new JailyardError(code, `jail -m meta/env failed: ${outputOf(r)}`, {
      jail: ctx.name,
      step: 'modify',
      output: outputOf(r),
    });
  }
}

/** `jls --libxo json -j J meta env`. */
export async function readMeta(host: FreeBSDHost, name: string): Promise<{ meta: string; env: string }> {
  const [j] = await jls(host, ['-j', name, 'meta', 'env']);
  if (!j) throw new JailyardError('JY_ERR_JAIL_NOT_FOUND', `jail ${name} is not running`, { jail: name });
  const str = (v: string | string[] | undefined): string => (Array.isArray(v) ? v.join(',') : (v ?? ''));
  return { meta: str(j.params.meta), env: str(j.params.env) };
}

/** `jls --libxo json jid name path host.hostname`: every jail on the host. */
export function listJails(host: FreeBSDHost): Promise<JlsJail[]> {
  return jls(host, ['jid', 'name', 'path', 'host.hostname']);
}
