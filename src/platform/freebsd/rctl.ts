// Resource limits with rctl(8): rules bound to the jail's name, added before the jail's first
// process and removed on every destroy.

import { JailyardError } from '../../errors.ts';
import type { Limits } from '../driver.ts';
import { rctlRules, rctlSubject } from './commands.ts';
import { type FreeBSDHost, must, outputOf, SYSTEM } from './system.ts';
import { TOOLS } from './tools.ts';

/**
 * `rctl -r jail:NAME`, idempotent: "no such rule" (ESRCH) and a kernel without RACCT (then
 * there can be no rules) are success. Run on every destroy, since limits added later by
 * modify are not in the facts the store holds.
 */
export async function removeRules(host: FreeBSDHost, jail: string, step: string): Promise<void> {
  const r = await host.runner.run([TOOLS.rctl, '-r', rctlSubject(jail)], SYSTEM);
  if (r.code !== 0 && !/no such process|RACCT\/RCTL/i.test(r.stderr)) {
    throw new JailyardError('JY_ERR_STEP_FAILED', `removing the resource limits failed: ${outputOf(r)}`, {
      jail,
      step,
      output: outputOf(r),
    });
  }
}

/** `rctl -a` for every limit; RACCT must be on (a boot-time tunable). */
export async function addRules(host: FreeBSDHost, jail: string, limits: Limits, step: string): Promise<void> {
  const racct = await host.runner.run([TOOLS.sysctl, '-n', 'kern.racct.enable'], SYSTEM);
  if (racct.code !== 0 || racct.stdout.trim() !== '1') {
    throw new JailyardError(
      'JY_ERR_PLATFORM',
      'resource limits need RACCT: set kern.racct.enable=1 in /boot/loader.conf and reboot',
      { jail, step, param: 'limits', output: outputOf(racct) },
    );
  }
  for (const rule of rctlRules(jail, limits)) {
    await must(host, [TOOLS.rctl, '-a', rule], 'JY_ERR_STEP_FAILED', `rctl -a ${rule}`, { jail, step });
  }
}
