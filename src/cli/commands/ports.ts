// jailyard ports — the ports the running jails publish (`expose`): host protocol and port ->
// the jail's address and port, from the facts their ports step recorded. Locally from the
// store; with --host from the daemon (GET /v1/ports). See docs/cli.md#ports
import type { RegisterVerb } from '../context.ts';
import { withJails } from '../jails.ts';
import { formatPublished, publishedPorts, type PublishedRow } from '../../runtime/published.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('ports')
    .description('list the published ports (expose) of the running jails: host proto/port -> jail address:port')
    .argument('[jail]', 'only this jail')
    .option('-l, --selector <selector>', 'only jails whose labels match (app=www,version in (v1,v2))')
    .option('--json', 'the ports as JSON on stdout')
    .action(async (jail: string | undefined, o: { json?: boolean; selector?: string }) => {
      const host = program.opts<{ host?: string }>().host ?? process.env.JAILYARD_HOST;
      let rows: PublishedRow[];
      if (host) {
        const { getJson } = await import('../../api/client.ts');
        const token = process.env.JAILYARD_TOKEN;
        const query = new URLSearchParams({
          ...(jail !== undefined ? { jail } : {}),
          ...(o.selector !== undefined ? { labelSelector: o.selector } : {}),
        }).toString();
        const q = query ? `?${query}` : '';
        rows = (await getJson<{ items: PublishedRow[] }>(host, `/v1/ports${q}`, token ? { token } : {})).items;
      } else {
        rows = await withJails(program, io, async ({ jails, store }) => {
          // the records with their runtime facts: the store's own (a reader's list is the same)
          if (jail !== undefined) await jails.get(jail);
          const filter = o.selector !== undefined ? { selector: o.selector } : undefined;
          return publishedPorts(store ? store.listJails(filter) : await jails.list(filter), jail);
        });
      }
      if (o.json) {
        io.out(JSON.stringify({ ports: rows }));
        return;
      }
      if (rows.length) io.out(formatPublished(rows));
      else io.err(jail !== undefined ? `${jail}: publishes no port` : 'no running jail publishes a port');
    });
};
