// jailyard skel — named, versioned skeletons. See docs/skeletons.md and docs/cli.md#skel
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { JailyardError, printableValue } from '../../errors.ts';
import { stateDir, type CliIO, type RegisterVerb } from '../context.ts';
import {
  createSkeleton,
  listSkeletons,
  parseSkeletonRef,
  removeSkeleton,
  resolveSkeleton,
  showSkeleton,
  usedVersion,
  verifySkeleton,
  type SkeletonSource,
  type SkeletonVersion,
} from '../../skeleton/registry.ts';
import { aptMirror, type DebootstrapProgress } from '../../skeleton/debootstrap.ts';
import { readPinned } from '../../skeleton/hooks.ts';
import type { ImageInfo } from '../../skeleton/image.ts';
import { parseSize } from '../../conf/spec.ts';
import { skeletonOf } from '../../layout.ts';
import type { JailSpec } from '../../conf/spec.ts';
import { loadDriver } from '../../platform/index.ts';

function describeSource(v: SkeletonVersion): string {
  const s = v.source;
  if (s.type === 'debootstrap') return `debootstrap ${s.suite}${s.mirror ? ` ${s.mirror}` : ''}`;
  if (s.type === 'oci-archive')
    return printableValue(`oci-archive ${s.path}${v.image?.ref ? ` (${v.image.ref})` : s.ref ? ` (${s.ref})` : ''}`);
  return `${s.type} ${s.path}`;
}

/** `skel show`'s lines for a skeleton made from an image: what it recorded (nothing of it
 * runs by itself: docs/skeletons.md, "Skeletons from images"). */
function describeImage(img: ImageInfo): string[] {
  const c = img.config;
  const list = (xs: string[]): string => printableValue(JSON.stringify(xs));
  return [
    `image:     ${img.format}${img.ref ? ` ${printableValue(img.ref)}` : ''}`,
    ...(img.manifestDigest ? [`  manifest:   ${img.manifestDigest}`] : []),
    `  config:     ${img.configDigest}`,
    `  layers:     ${img.layers.length}${img.layers.map((l) => `\n    ${printableValue(l.blob)} (${l.compression}, ${l.size} bytes)`).join('')}`,
    ...(c.entrypoint ? [`  entrypoint: ${list(c.entrypoint)}`] : []),
    ...(c.cmd ? [`  cmd:        ${list(c.cmd)}`] : []),
    ...(c.workingDir ? [`  workdir:    ${printableValue(c.workingDir)}`] : []),
    ...(c.user ? [`  user:       ${printableValue(c.user)}`] : []),
    ...(c.exposedPorts ? [`  ports:      ${printableValue(c.exposedPorts.join(' '))}`] : []),
    ...(c.env ? c.env.map((e) => `  env:        ${printableValue(e)}`) : []),
    ...(c.os || c.architecture ? [`  platform:   ${printableValue(`${c.os ?? '?'}/${c.architecture ?? '?'}`)}`] : []),
    ...img.notes.map((n) => `  note:       ${n}`),
  ];
}

/** The mirror apt uses on this machine (debootstrap needs one it can reach). */
function systemMirror(): string | undefined {
  const files = ['/etc/apt/sources.list'];
  if (existsSync('/etc/apt/sources.list.d'))
    for (const f of readdirSync('/etc/apt/sources.list.d').sort()) files.push(`/etc/apt/sources.list.d/${f}`);
  return aptMirror(
    files
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n'),
  );
}

/** A progress bar on stderr while debootstrap runs (only on a terminal). */
async function progressBar(io: CliIO): Promise<{ update: (p: DebootstrapProgress) => void; stop: () => void }> {
  if (!process.stderr.isTTY) {
    let lastPhase = '';
    return {
      update: (p) => {
        if (p.phase !== lastPhase) io.err(`debootstrap: ${p.phase.toLowerCase()}...`);
        lastPhase = p.phase;
      },
      stop: () => {},
    };
  }
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    { format: 'debootstrap [{bar}] {percentage}% {phase}', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(1, 0, { phase: 'starting' });
  return {
    update: (p) => {
      bar.setTotal(p.total);
      bar.update(p.done, { phase: p.phase });
    },
    stop: () => bar.stop(),
  };
}

/** Which jails use `name@version`: the store's jails whose `skeleton` names it. */
async function usersFinder(
  dir: string,
): Promise<{ usersOf: (name: string, version: number) => string[]; close: () => void }> {
  let store: { listJails(): JailSpec[]; close(): void };
  try {
    const { openStore } = await import('../../store/sqlite.ts');
    store = openStore(dir);
  } catch (e) {
    throw new JailyardError(
      'JY_ERR_INTERNAL',
      `cannot open the store to check which jails use the skeleton: ${(e as Error).message}`,
      { step: 'skel rm' },
      { cause: e },
    );
  }
  const jails = store.listJails();
  return {
    usersOf: (name, version) => {
      const latest = resolveSkeleton(dir, name).version;
      return jails
        .filter((j) => {
          // a jail without a path runs on HOST_ROOT_SKELETON without naming it
          const p = skeletonOf(j);
          if (p === undefined) return false;
          const pin = readPinned(dir, j.name);
          return usedVersion(p, name, latest, pin?.name === name ? pin.version : undefined) === version;
        })
        .map((j) => j.name);
    },
    close: () => store.close(),
  };
}

export const register: RegisterVerb = (program: Command, io: CliIO) => {
  const skel = program.command('skel').description('named, versioned skeletons that thin jails are built from');

  skel
    .command('create')
    .description(
      'create skeleton NAME (or its next version): --from DIR references a tree in place (default /), --copy DIR, --debootstrap SUITE and --oci-archive FILE make an owned, immutable tree',
    )
    .argument('<name>', 'skeleton name')
    .option('--from <dir>', 'reference this tree where it is (nothing copied)')
    .option('--copy <dir>', 'copy this tree into the skeleton')
    .option('--debootstrap <suite>', 'build a Debian tree with debootstrap --variant=minbase')
    .option('--mirror <url>', 'Debian mirror for --debootstrap (default: the one apt uses)')
    .option(
      '--oci-archive <file>',
      'build the tree from a container image: an OCI image layout (directory or tar) or a docker save archive',
    )
    .option('--ref <name>', 'with --oci-archive: which image of several (its name or tag)')
    .option('--max-size <size>', 'with --oci-archive: refuse images with more file bytes than this (default 16G)')
    .option('--json', 'print the new version as JSON')
    .action(
      async (
        name: string,
        o: {
          from?: string;
          copy?: string;
          debootstrap?: string;
          mirror?: string;
          ociArchive?: string;
          ref?: string;
          maxSize?: string;
          json?: boolean;
        },
      ) => {
        const given = [o.from, o.copy, o.debootstrap, o.ociArchive].filter((x) => x !== undefined).length;
        if (given > 1)
          throw new JailyardError('JY_ERR_USAGE', 'give one of --from, --copy, --debootstrap, --oci-archive');
        if (o.mirror && !o.debootstrap)
          throw new JailyardError('JY_ERR_USAGE', '--mirror only goes with --debootstrap');
        if ((o.ref !== undefined || o.maxSize !== undefined) && o.ociArchive === undefined)
          throw new JailyardError('JY_ERR_USAGE', '--ref and --max-size only go with --oci-archive');
        const { remoteOf } = await import('../portable.ts');
        const remote = remoteOf(program);
        if (remote) {
          // over --host only an image archive: the other sources are folders of this machine
          if (o.ociArchive === undefined)
            throw new JailyardError(
              'JY_ERR_USAGE',
              'over --host, skel create takes --oci-archive FILE (the archive is sent to the daemon); --from, --copy and --debootstrap run on the jail host itself',
            );
          const { createSkeletonRemote } = await import('../../api/skeleton-client.ts');
          const v = await createSkeletonRemote(
            remote.host,
            name,
            resolve(o.ociArchive),
            {
              ...(o.ref !== undefined ? { ref: o.ref } : {}),
              ...(o.maxSize !== undefined ? { maxSize: o.maxSize } : {}),
            },
            remote.token ? { token: remote.token } : {},
          );
          if (o.json) io.out(JSON.stringify(v));
          io.err(
            `skeleton ${name}@${v.version} on ${remote.host}: ${v.kind}, ${describeSource(v)}, ${v.entries} entries in its manifest`,
          );
          for (const n of v.image?.notes ?? []) io.err(`note: ${n}`);
          return;
        }
        let source: SkeletonSource;
        if (o.ociArchive !== undefined)
          source = {
            type: 'oci-archive',
            path: isAbsolute(o.ociArchive) ? o.ociArchive : resolve(o.ociArchive),
            ...(o.ref !== undefined ? { ref: o.ref } : {}),
          };
        else if (o.copy !== undefined) source = { type: 'copy', path: o.copy };
        else if (o.debootstrap !== undefined) {
          const mirror = o.mirror ?? systemMirror();
          source = { type: 'debootstrap', suite: o.debootstrap, ...(mirror ? { mirror } : {}) };
        } else source = { type: 'from', path: o.from ?? '/' };
        const bar = source.type === 'debootstrap' ? await progressBar(io) : undefined;
        let v: SkeletonVersion;
        try {
          v = await createSkeleton(stateDir(program), name, source, {
            ...(bar ? { onProgress: bar.update } : {}),
            // the driver runs debootstrap, and unmounts what it leaves in the tree it builds
            ...(source.type === 'debootstrap' ? { host: await loadDriver({ stateDir: stateDir(program) }) } : {}),
            ...(o.maxSize !== undefined
              ? { imageLimits: { maxBytes: parseSize(o.maxSize, { param: '--max-size' }) } }
              : {}),
          });
        } finally {
          bar?.stop();
        }
        if (o.json) io.out(JSON.stringify({ name, ...v }));
        io.err(`skeleton ${name}@${v.version}: ${v.kind}, ${describeSource(v)}, ${v.entries} entries in its manifest`);
        for (const n of v.image?.notes ?? []) io.err(`note: ${n}`);
      },
    );

  skel
    .command('ls')
    .description('list skeletons and their versions')
    .option('--json', 'one JSON document on stdout')
    .action((o: { json?: boolean }) => {
      const all = listSkeletons(stateDir(program));
      if (o.json) {
        io.out(JSON.stringify(all));
        return;
      }
      const rows = all.map((s) => {
        const latest = s.versions[s.versions.length - 1]!;
        return [
          s.name,
          String(latest.version),
          s.versions.map((v) => v.version).join(','),
          latest.kind,
          describeSource(latest),
        ];
      });
      const head = ['NAME', 'LATEST', 'VERSIONS', 'KIND', 'SOURCE'];
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [head, ...rows])
        io.out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
    });

  skel
    .command('show')
    .description('show one skeleton version (NAME = latest, NAME@N)')
    .argument('<ref>', 'NAME or NAME@N')
    .option('--verify', 'compare the tree with its recorded manifest')
    .option('--json', 'one JSON document on stdout')
    .action((ref: string, o: { json?: boolean; verify?: boolean }) => {
      const dir = stateDir(program);
      const shown = showSkeleton(dir, ref);
      const verify = o.verify ? verifySkeleton(dir, `${shown.name}@${shown.version.version}`) : undefined;
      if (o.json) {
        io.out(JSON.stringify({ ...shown, ...(verify ? { verify } : {}) }));
      } else {
        const v = shown.version;
        io.out(
          [
            `name:      ${shown.name}`,
            `version:   ${v.version} (of ${shown.versions.join(', ')})`,
            `kind:      ${v.kind}`,
            `source:    ${describeSource(v)}`,
            `created:   ${v.createdAt}`,
            `root:      ${v.root}`,
            `seed:      ${v.seedRoot}`,
            `manifest:  ${v.manifest} (${v.entries} entries, ${v.bytes} bytes)`,
            ...(v.image ? describeImage(v.image) : []),
          ].join('\n'),
        );
        if (verify)
          io.out(
            verify.ok
              ? 'verify:    ok'
              : `verify:    CHANGED ${verify.changed.length}, ADDED ${verify.added.length}, REMOVED ${verify.removed.length}\n${[...verify.changed.map((p) => `  M ${p}`), ...verify.added.map((p) => `  A ${p}`), ...verify.removed.map((p) => `  D ${p}`)].join('\n')}`,
          );
      }
      if (verify && !verify.ok) process.exitCode = 1;
    });

  skel
    .command('rm')
    .description('remove a skeleton (NAME: all versions) or one version (NAME@N); refused while jails use it')
    .argument('<ref>', 'NAME or NAME@N')
    .action(async (ref: string) => {
      const dir = stateDir(program);
      parseSkeletonRef(ref);
      const finder = await usersFinder(dir);
      try {
        const removed = await removeSkeleton(dir, ref, {
          usersOf: finder.usersOf,
          host: await loadDriver({ stateDir: dir }),
        });
        io.err(`removed ${parseSkeletonRef(ref).name}@${removed.join(',')}`);
      } finally {
        finder.close();
      }
    });
};
