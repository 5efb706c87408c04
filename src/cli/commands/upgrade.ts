// jailyard upgrade — move a thin jail to another version of its skeleton in one structured
// step: its writable config gets a 3-way merge (conflicts left as FILE.jailyard-new for the
// user, nothing silently overwritten), then its `skeleton` parameter names the new version;
// its mount plan follows from that. A failed upgrade leaves the jail on its old version.
// The store's new `skeleton` parameter is the commit: before it, an intent lists every change
// made to the jail's tree (src/runtime/intent.ts), so a crash is undone by `reconcile` (or
// finished, once the parameter is recorded): never a jail half on one version and half on
// the other. See docs/skeletons.md
import type { RegisterVerb } from '../context.ts';
import { JailyardError } from '../../errors.ts';
import { withSession } from '../jails.ts';
import { readPinned, upgradeJail } from '../../skeleton/hooks.ts';
import type { MountPlan } from '../../skeleton/plan.ts';
import { resolveSkeleton } from '../../skeleton/registry.ts';
import { skeletonOf } from '../../layout.ts';
import { crashPoint } from '../../runtime/crashpoint.ts';
import { saveIntent } from '../../runtime/intent.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('upgrade')
    .description('move a thin jail to another skeleton version (3-way merge of its writable config)')
    .argument('<name>', 'the jail')
    .requiredOption('--to <skeleton@version>', 'the skeleton version to move to, e.g. host@2')
    .option('--restart', 'stop the jail first if it runs, and start it again afterwards')
    .option('--json', 'print what was merged and the conflicts as JSON')
    .action(async (name: string, o: { to: string; restart?: boolean; json?: boolean }) => {
      await withSession(
        program,
        io,
        async ({ service, store, stateDir, mountTransient }) => {
          if (!store)
            throw new JailyardError('JY_ERR_USAGE', 'upgrade runs on the jail host itself, not through --host');
          const before = store.requireJail(name);
          const wasRunning = before.state !== 'stopped';
          if (wasRunning && !o.restart)
            throw new JailyardError(
              'JY_ERR_INVALID_TRANSITION',
              `the jail is ${before.state}: stop it first, or pass --restart`,
              { jail: name },
            );
          if (wasRunning) {
            const r = await service.stop([name]);
            if (!r.ok)
              throw new JailyardError('JY_ERR_STEP_FAILED', r.outcomes[0]?.message ?? 'stop failed', { jail: name });
          }
          crashPoint('upgrade:stopped');
          let result;
          try {
            const record = store.requireJail(name);
            // a jail without a path names host-root implicitly: the upgrade names it
            const paramBefore = String(skeletonOf(record) ?? '');
            const paramAfter = `${paramBefore.split('@')[0]}@${resolveSkeleton(stateDir, o.to).version}`;
            const intent = saveIntent(stateDir, {
              kind: 'upgrade',
              jail: name,
              paramBefore,
              paramAfter,
              pinBefore: readPinned(stateDir, name) ?? null,
            });
            crashPoint('upgrade:intent');
            // copy-on-write dirs or a disk image are mounted for the merge: they stay mounted
            // until the intent is finished or rolled back, whose paths are the mounted ones
            let unmountViews: (() => Promise<void>) | undefined;
            const views =
              mountTransient &&
              (async (plan: MountPlan) => {
                unmountViews = await mountTransient(name, plan);
                return async () => {};
              });
            try {
              try {
                result = await upgradeJail(stateDir, record, o.to, views, (op) => {
                  intent.record(op);
                  crashPoint(`upgrade:${op.op}`);
                });
                crashPoint('upgrade:pinned');
                await service.modify(name, { params: { skeleton: paramAfter } });
              } catch (e) {
                // not recorded: the tree and the pin go back to the old version
                intent.rollBack(stateDir);
                throw e;
              }
              crashPoint('upgrade:recorded');
              intent.finish();
            } finally {
              await unmountViews?.();
            }
            crashPoint('upgrade:done');
          } finally {
            if (wasRunning) {
              const r = await service.start([name]);
              if (!r.ok) io.err(`${name}: failed to start again: ${r.outcomes[0]?.message}`);
            }
          }
          if (o.json) io.out(JSON.stringify(result));
          io.err(
            `${name}: upgraded from version ${result.from} to ${result.to}: ${result.touched.length} file(s) updated`,
          );
          for (const c of result.conflicts)
            io.err(`${name}: conflict in ${c.path}: ${c.reason}${c.newPath ? ` (new version at ${c.newPath})` : ''}`);
          if (result.conflicts.length)
            io.err(
              `${name}: resolve the conflicts: the jail's files are kept, the new version is beside each as FILE.jailyard-new`,
            );
        },
        { progress: true },
      );
    });
};
