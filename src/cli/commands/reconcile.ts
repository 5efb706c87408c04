// jailyard reconcile — finish what a crashed run left: half-started or half-stopped jails,
// dead jails, and mounts (with --all: netns, links, cgroups, processes) nothing accounts for.
// See docs/cli.md#reconcile
import type { RegisterVerb } from '../context.ts';
import { withSession } from '../jails.ts';
import { reconcile } from '../../runtime/reconcile.ts';
import { createLocalService } from '../../runtime/service.ts';
import { loadDriver } from '../../platform/index.ts';
import { JailyardError } from '../../errors.ts';
import { skeletonHooks } from '../../skeleton/hooks.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('reconcile')
    .description('compare the store with the system and undo what crashed runs left behind')
    .option(
      '--all',
      'also remove jailyard netns/links/cgroups/processes of no state folder still on this host (never those of another existing folder)',
    )
    .option('--dry-run', 'only report')
    .option('--json', 'print the report as JSON')
    .action(async (o: { all?: boolean; dryRun?: boolean; json?: boolean }) => {
      await withSession(program, io, async ({ store, stateDir }) => {
        if (!store)
          throw new JailyardError('JY_ERR_USAGE', 'reconcile runs on the jail host itself, not through --host');
        const driver = await loadDriver({ stateDir });
        const local = createLocalService({
          store,
          stateDir,
          driver,
          skeletons: skeletonHooks(),
          progress: (j, t) => io.err(`${j}: ${t}`),
        });
        const report = await reconcile({
          store,
          driver,
          stateDir,
          recover: (n) => local.recover(n),
          mountTransient: (n, plan) => local.mountTransient(n, plan),
          all: !!o.all,
          dryRun: !!o.dryRun,
        });
        if (o.json) io.out(JSON.stringify(report));
        for (const r of report.recovered) io.err(`${r}: ${o.dryRun ? 'would be stopped' : 'stopped (recovered)'}`);
        for (const r of report.busy) io.err(`${r}: left alone (another jailyard process is starting or stopping it)`);
        for (const r of report.removed) io.err(`${r.kind} ${r.id}: ${o.dryRun ? 'would be removed' : 'removed'}`);
        for (const u of report.undone) io.err(`${o.dryRun ? 'would be: ' : ''}${u}`);
        for (const f of report.failed) io.err(`${f.jail}: failed: ${f.message}`);
        if (report.failed.length) process.exitCode = 1;
      });
    });
};
