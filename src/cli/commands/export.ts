// jailyard export — a stopped jail as one archive (tar + zstd): its config, meta, env, a
// reference to its skeleton (name@version and digest), its writable part, and with --full the
// skeleton's tree. With --host the daemon streams it here. See docs/cli.md#export and
// src/portable/export.ts.
import { printableValue } from '../../errors.ts';
import { resolve } from 'node:path';
import type { RegisterVerb } from '../context.ts';
import { remoteOf, whileStopped, withLocal } from '../portable.ts';

export const register: RegisterVerb = (program, io) => {
  program
    .command('export')
    .description('write a stopped jail (config, meta/env, writable part, skeleton reference) to NAME.tar.zst')
    .argument('<name>', 'the jail')
    .option('-o, --output <file>', 'the archive to write (default: NAME.tar.zst)')
    .option('--full', 'also carry the skeleton tree (an owned skeleton), for a host that does not have it')
    .option('--restart', 'stop the jail for the export if it runs, and start it again afterwards')
    .option('--json', 'print what was written as JSON')
    .action(async (name: string, o: { output?: string; full?: boolean; restart?: boolean; json?: boolean }) => {
      const remote = remoteOf(program);
      if (remote) {
        const file = resolve(o.output ?? `${name}.tar.zst`);
        const { exportRemote } = await import('../../api/portable-client.ts');
        const r = await exportRemote(
          remote.host,
          name,
          file,
          { ...(o.full ? { full: true } : {}), ...(o.restart ? { restart: true } : {}) },
          remote.token ? { token: remote.token } : {},
        );
        io.err(`${name}: exported to ${file}: ${r.bytes} bytes (compressed) from ${remote.host}`);
        if (o.json) io.out(JSON.stringify({ file, jail: name, compressed: r.bytes }));
        return;
      }
      await withLocal(program, io, 'export', async (w) => {
        const record = w.store.requireJailRef(name);
        const file = resolve(o.output ?? `${record.name}.tar.zst`);
        const { exportJail } = await import('../../portable/export.ts');
        const r = await whileStopped(w, io, record.name, o.restart, () =>
          exportJail(w.stateDir, w.store.requireJail(record.name), file, {
            ...(o.full ? { full: true } : {}),
            mountsBelow: w.mountsBelow,
          }),
        );
        for (const n of r.notes) io.err(`${record.name}: note: ${printableValue(n)}`);
        const skel = r.skeleton
          ? `, skeleton ${r.skeleton.name}@${r.skeleton.version}${r.skeleton.included ? ' (included)' : ''}`
          : '';
        io.err(`${record.name}: exported to ${r.file}: ${r.entries} entries, ${r.bytes} bytes of files${skel}`);
        if (o.json) io.out(JSON.stringify(r));
      });
    });
};
