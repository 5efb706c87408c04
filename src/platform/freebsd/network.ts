// A jail's addresses on FreeBSD: aliases added to the host interface each entry names
// (ip4.addr=em0|192.0.2.10/24), removed again in reverse.

import { JailyardError, withContext } from '../../errors.ts';
import type { JailContext, NetworkFacts } from '../driver.ts';
import { ifconfigArgv } from './commands.ts';
import { formatAddress, parseAddress, specAddresses } from './params.ts';
import { type FreeBSDHost, outputOf, SYSTEM } from './system.ts';

export async function setupNetwork(host: FreeBSDHost, ctx: JailContext): Promise<NetworkFacts> {
  const facts: NetworkFacts = { addresses: [] };
  for (const a of specAddresses(ctx.spec)) {
    if (!a.iface) continue; // no interface: the address must already exist on the host (jail(8) too)
    const r = await host.runner.run(ifconfigArgv({ ...a, iface: a.iface }, false), SYSTEM);
    if (r.code !== 0) {
      const err = new JailyardError('JY_ERR_ADDRESS', `adding ${a.addr} to ${a.iface} failed: ${outputOf(r)}`, {
        jail: ctx.name,
        step: 'addresses',
        param: a.family === 'inet' ? 'ip4.addr' : 'ip6.addr',
        output: outputOf(r),
      });
      try {
        await teardownNetwork(host, ctx, facts);
      } catch (u) {
        throw withContext(err, { after: `; removing the addresses added before failed too: ${(u as Error).message}` });
      }
      throw err;
    }
    facts.addresses.push(formatAddress(a));
  }
  return facts;
}

export async function teardownNetwork(host: FreeBSDHost, ctx: JailContext, facts: NetworkFacts): Promise<void> {
  const failed: string[] = [];
  for (const entry of [...facts.addresses].reverse()) {
    const a = parseAddress(entry, entry.split(' ')[0]!.includes(':') ? 'inet6' : 'inet');
    if (!a.iface) continue;
    const r = await host.runner.run(ifconfigArgv({ ...a, iface: a.iface }, true), SYSTEM);
    // an alias already gone is what we wanted (EADDRNOTAVAIL: "Can't assign requested address")
    if (r.code !== 0 && !/can't assign requested address/i.test(r.stderr)) failed.push(`${entry}: ${outputOf(r)}`);
  }
  if (failed.length)
    throw new JailyardError('JY_ERR_ADDRESS', `removing addresses failed: ${failed.join('; ')}`, {
      jail: ctx.name,
      step: 'addresses.remove',
    });
}
