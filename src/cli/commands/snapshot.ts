// jailyard snapshot — copies of a stopped jail's writable part kept beside it
// (create/list/rollback/remove). See docs/cli.md#snapshot and src/portable/snapshot.ts.
import { printableValue } from '../../errors.ts';
import type { RegisterVerb } from '../context.ts';
import type { SnapshotInfo } from '../../portable/snapshot.ts';
import { remoteOf, whileStopped, withLocal } from '../portable.ts';

export const register: RegisterVerb = (program, io) => {
  /** With --host: the daemon's answer (`done` for an answer without a body); else undefined. */
  const remoteCall = async <T>(
    op: 'list' | 'create' | 'rollback' | 'remove',
    jail: string,
    snap: { name?: string; restart?: boolean },
    done?: true,
  ): Promise<T | undefined> => {
    const remote = remoteOf(program);
    if (!remote) return undefined;
    const { snapshotRemote } = await import('../../api/portable-client.ts');
    const r = await snapshotRemote<T>(remote.host, op, jail, snap, remote.token ? { token: remote.token } : {});
    return done ? (true as T) : r;
  };
  const snapshot = program
    .command('snapshot')
    .description("snapshots of a jail's writable part: create, list, rollback, remove");

  snapshot
    .command('create')
    .description("copy the stopped jail's writable part as snapshot NAME (default: the time, e.g. 20261202-231501)")
    .argument('<jail>', 'the jail')
    .argument('[name]', 'the snapshot')
    .option('--restart', 'stop the jail for the copy if it runs, and start it again afterwards')
    .option('--json', 'print the snapshot as JSON')
    .action(async (jail: string, name: string | undefined, o: { restart?: boolean; json?: boolean }) => {
      const report = (s: SnapshotInfo): void => {
        for (const n of s.notes) io.err(`${jail}: note: ${printableValue(n)}`);
        io.err(`${jail}: snapshot ${s.name}: ${s.entries} entries, ${s.bytes} bytes of files`);
        if (o.json) io.out(JSON.stringify(s));
      };
      const remote = await remoteCall<SnapshotInfo>('create', jail, {
        ...(name ? { name } : {}),
        ...(o.restart ? { restart: true } : {}),
      });
      if (remote) return report(remote);
      await withLocal(program, io, 'snapshot create', async (w) => {
        const record = w.store.requireJailRef(jail);
        const { createSnapshot } = await import('../../portable/snapshot.ts');
        const s = await whileStopped(w, io, record.name, o.restart, async () =>
          createSnapshot(w.stateDir, w.store.requireJail(record.name), name, w.mountsBelow),
        );
        report(s);
      });
    });

  snapshot
    .command('list')
    .alias('ls')
    .description("the jail's snapshots, oldest first")
    .argument('<jail>', 'the jail')
    .option('--json', 'print them as JSON')
    .action(async (jail: string, o: { json?: boolean }) => {
      const print = (list: SnapshotInfo[]): void => {
        if (o.json) {
          io.out(JSON.stringify(list));
          return;
        }
        io.out('NAME                 CREATED                   ENTRIES      BYTES');
        for (const s of list)
          io.out(
            `${s.name.padEnd(20)} ${s.createdAt.padEnd(25)} ${String(s.entries).padStart(7)} ${String(s.bytes).padStart(10)}`,
          );
      };
      const remote = await remoteCall<SnapshotInfo[]>('list', jail, {});
      if (remote) return print(remote);
      await withLocal(program, io, 'snapshot list', async (w) => {
        const record = w.store.requireJailRef(jail);
        const { listSnapshots } = await import('../../portable/snapshot.ts');
        print(listSnapshots(w.stateDir, record.name));
      });
    });

  snapshot
    .command('rollback')
    .description("put the stopped jail's writable part back to snapshot NAME (the snapshot stays)")
    .argument('<jail>', 'the jail')
    .argument('<name>', 'the snapshot')
    .action(async (jail: string, name: string) => {
      if (await remoteCall('rollback', jail, { name })) return void io.err(`${jail}: rolled back to snapshot ${name}`);
      await withLocal(program, io, 'snapshot rollback', async (w) => {
        const record = w.store.requireJailRef(jail);
        const { rollbackSnapshot } = await import('../../portable/snapshot.ts');
        rollbackSnapshot(w.stateDir, record, name, w.mountsBelow);
        io.err(`${record.name}: rolled back to snapshot ${name}`);
      });
    });

  snapshot
    .command('remove')
    .alias('rm')
    .description('remove snapshot NAME of the jail')
    .argument('<jail>', 'the jail')
    .argument('<name>', 'the snapshot')
    .action(async (jail: string, name: string) => {
      if (await remoteCall('remove', jail, { name }, true)) return void io.err(`${jail}: snapshot ${name} removed`);
      await withLocal(program, io, 'snapshot remove', async (w) => {
        const record = w.store.requireJailRef(jail);
        const { removeSnapshot } = await import('../../portable/snapshot.ts');
        removeSnapshot(w.stateDir, record.name, name);
        io.err(`${record.name}: snapshot ${name} removed`);
      });
    });
};
