// Skeletons from container images: `jailyard skel create NAME --oci-archive FILE`, FILE an OCI
// image layout (a directory with oci-layout, index.json, blobs/ALG/HEX, or a tar of one, as
// `docker save` >= 25 and `skopeo copy oci-archive:` write) or a legacy `docker save` archive
// (manifest.json, CONFIG.json, ID/layer.tar). Every file of it is hostile input:
// - descriptors are checked: the manifest's digest against the index, the config's and each
//   layer blob's digest and size against the manifest; each layer's uncompressed digest
//   against the config's rootfs.diff_ids (for docker save the only digests there are: the
//   config's file name and the diff_ids);
// - JSON files are read up to 4 MiB; names inside the archive are relative, without `..`;
//   a symlink in the outer archive (docker save's shared layers) must stay inside it;
// - layers are applied in order by layers.ts (whiteouts, no writes through symlinks, caps).
// The image's config (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts) is returned to be
// recorded with the skeleton version; nothing of it runs.

import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  createReadStream,
  fstatSync,
  openSync,
  readSync,
  realpathSync,
  statSync,
  writeSync,
  mkdirSync,
} from 'node:fs';
import { join, posix } from 'node:path';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { printableValue } from '../errors.ts';
import type { ReadEntry } from 'tar';
import { applyLayer, entryParts, imageError, note, parseTar, type ApplyTally, type LayerLimits } from './layers.ts';

const MAX_JSON = 4 * 1024 * 1024;

export interface ImageConfig {
  env?: string[];
  cmd?: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
  exposedPorts?: string[];
  os?: string;
  architecture?: string;
}

export interface ImageLayer {
  /** The blob's digest (OCI), or its file in a docker save archive. */
  blob: string;
  /** The uncompressed tar's digest (the config's diff_id). */
  diffId: string;
  compression: 'gzip' | 'zstd' | 'none';
  size: number;
}

/** What a skeleton made from an image records (skeleton.json, `skel show`). */
export interface ImageInfo {
  format: 'oci' | 'docker-save';
  /** The image's name in the archive (ref.name annotation, RepoTags), when it has one. */
  ref?: string;
  /** sha256:... of the image manifest (OCI). */
  manifestDigest?: string;
  configDigest: string;
  layers: ImageLayer[];
  config: ImageConfig;
  /** What was skipped (device nodes), architecture mismatches. */
  notes: string[];
}

/** The files of an archive, by their names inside it. */
interface ArchiveFiles {
  /** The host path of the regular file `rel` names, or undefined when it has none. */
  find(rel: string): string | undefined;
}

// --- the outer archive -----------------------------------------------------------------

function archiveName(rel: string): string {
  try {
    return entryParts(rel).join('/');
  } catch (e) {
    throw imageError(`bad file name "${printableValue(rel)}" in the archive: ${(e as Error).message}`);
  }
}

/** A directory: names resolve inside it (its own symlinks may not lead out). */
function dirFiles(dir: string): ArchiveFiles {
  const top = realpathSync(dir);
  return {
    find(rel) {
      const name = archiveName(rel);
      let real: string;
      try {
        real = realpathSync(join(top, name));
      } catch {
        return undefined;
      }
      if (!real.startsWith(`${top}/`)) throw imageError(`"${printableValue(name)}" leads out of the image directory`);
      return statSync(real).isFile() ? real : undefined;
    },
  };
}

type Magic = 'gzip' | 'zstd' | 'none';

function magicOf(path: string): Magic {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const b = Buffer.alloc(4);
    const n = readSync(fd, b, 0, 4, 0);
    if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (n === 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    closeSync(fd);
  }
}

function decompressed(path: string, how: Magic): AsyncIterable<Buffer> {
  const raw = createReadStream(path, { highWaterMark: 1 << 18 });
  if (how === 'none') return raw;
  const z = how === 'gzip' ? createGunzip() : createZstdDecompress();
  raw.on('error', (e) => z.destroy(e));
  return raw.pipe(z);
}

/**
 * A tar (maybe gzip/zstd compressed) of an image: its files are written to `scratch` (flat,
 * numbered), its links kept as names inside the archive.
 */
async function tarFiles(path: string, scratch: string, limits: LayerLimits): Promise<ArchiveFiles> {
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  let n = 0;
  let bytes = 0;
  await parseTar(decompressed(path, magicOf(path)), (entry: ReadEntry, fail) => {
    const name = archiveName(entry.path);
    if (++n > 100_000) throw imageError('more than 100000 files in the archive');
    if (entry.type === 'Directory' || name === '') {
      entry.resume();
      return;
    }
    files.delete(name);
    links.delete(name);
    if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
      const link = entry.linkpath ?? '';
      const target =
        entry.type === 'Link' || link.startsWith('/') ? link : posix.normalize(posix.join(posix.dirname(name), link));
      if (target.startsWith('/') || target === '..' || target.startsWith('../'))
        throw imageError(
          `"${printableValue(name)}" links out of the archive (to "${printableValue(entry.linkpath ?? '')}")`,
        );
      links.set(name, archiveName(target));
      entry.resume();
      return;
    }
    if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
      entry.resume();
      return;
    }
    bytes += entry.size;
    if (bytes > limits.maxBytes + 1024 ** 3)
      throw imageError(`the archive holds more than ${limits.maxBytes} bytes (the limit; --max-size raises it)`);
    const out = join(scratch, String(n));
    const fd = openSync(out, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    let open = true;
    const close = (): void => {
      if (open) closeSync(fd);
      open = false;
    };
    entry.on('data', (c: Buffer) => {
      try {
        let off = 0;
        while (off < c.length) off += writeSync(fd, c, off, c.length - off);
      } catch (e) {
        close();
        fail(e);
      }
    });
    entry.on('end', () => {
      close();
      files.set(name, out);
    });
    entry.on('error', close);
    entry.resume();
  });
  return {
    find(rel) {
      let name = archiveName(rel);
      for (let hops = 0; hops < 16; hops++) {
        const f = files.get(name);
        if (f) return f;
        const l = links.get(name);
        if (l === undefined) return undefined;
        name = l;
      }
      throw imageError(`"${printableValue(rel)}": too many links in the archive`);
    },
  };
}

// --- descriptors and JSON ----------------------------------------------------------------

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

function checkDigest(d: unknown, what: string): string {
  if (typeof d !== 'string' || !DIGEST_RE.test(d))
    throw imageError(`${what}: not a digest: ${printableValue(JSON.stringify(d) ?? '')}`);
  return d;
}

function fileDigest(path: string, alg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash(alg);
    createReadStream(path)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(`${alg}:${h.digest('hex')}`))
      .on('error', reject);
  });
}

function readSmall(path: string, what: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_JSON) throw imageError(`${what} is ${size} bytes (more than ${MAX_JSON})`);
    const b = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const r = readSync(fd, b, off, size - off, off);
      if (r === 0) break;
      off += r;
    }
    return b.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

function parseJson(b: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(b.toString('utf8'));
  } catch (e) {
    throw imageError(`${what} is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null) throw imageError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

function descriptor(v: unknown, what: string): Descriptor {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const digest = checkDigest(o.digest, what);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0)
    throw imageError(`${what}: no usable size`);
  return {
    mediaType: typeof o.mediaType === 'string' ? o.mediaType : '',
    digest,
    size: o.size,
    ...(typeof o.annotations === 'object' && o.annotations !== null
      ? { annotations: o.annotations as Record<string, string> }
      : {}),
    ...(typeof o.platform === 'object' && o.platform !== null
      ? { platform: o.platform as Descriptor['platform'] }
      : {}),
  };
}

/** A blob of the OCI layout, checked against its descriptor (size and digest). */
async function blob(files: ArchiveFiles, d: Descriptor, what: string): Promise<string> {
  const [alg, hex] = d.digest.split(':') as [string, string];
  const path = files.find(`blobs/${alg}/${hex}`);
  if (!path) throw imageError(`${what} ${d.digest}: the archive has no blobs/${alg}/${hex}`);
  const size = statSync(path).size;
  if (size !== d.size) throw imageError(`${what} ${d.digest}: ${size} bytes, the descriptor says ${d.size}`);
  const got = await fileDigest(path, alg);
  if (got !== d.digest)
    throw imageError(`${what}: digest mismatch: the descriptor says ${d.digest}, the blob is ${got}`);
  return path;
}

function strings(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw imageError(`the image config's ${what} is not a list of strings`);
  return v as string[];
}

const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** The image config's parts a skeleton records, and its diff_ids. */
function readConfig(b: Buffer): { config: ImageConfig; diffIds: string[] } {
  const c = parseJson(b, 'the image config');
  const rootfs = (c.rootfs ?? {}) as Record<string, unknown>;
  if (rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids))
    throw imageError('the image config has no rootfs of type "layers" with diff_ids');
  const diffIds = rootfs.diff_ids.map((d, i) => checkDigest(d, `diff_id ${i + 1}`));
  const cc = (typeof c.config === 'object' && c.config !== null ? c.config : {}) as Record<string, unknown>;
  const str = (v: unknown, what: string): string | undefined => {
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw imageError(`the image config's ${what} is not a string`);
    return v;
  };
  const env = strings(cc.Env, 'Env');
  const cmd = strings(cc.Cmd, 'Cmd');
  const entrypoint = strings(cc.Entrypoint, 'Entrypoint');
  const workingDir = str(cc.WorkingDir, 'WorkingDir');
  const user = str(cc.User, 'User');
  const ports =
    typeof cc.ExposedPorts === 'object' && cc.ExposedPorts !== null ? Object.keys(cc.ExposedPorts).sort() : undefined;
  const os = str(c.os, 'os');
  const architecture = str(c.architecture, 'architecture');
  return {
    diffIds,
    config: {
      ...(env ? { env } : {}),
      ...(cmd ? { cmd } : {}),
      ...(entrypoint ? { entrypoint } : {}),
      ...(workingDir ? { workingDir } : {}),
      ...(user ? { user } : {}),
      ...(ports?.length ? { exposedPorts: ports } : {}),
      ...(os ? { os } : {}),
      ...(architecture ? { architecture } : {}),
    },
  };
}

const INDEX_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];
const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

function layerCompression(mediaType: string, what: string): Magic {
  const m = mediaType.replace('.nondistributable', '');
  if (m === 'application/vnd.oci.image.layer.v1.tar+gzip' || m === 'application/vnd.docker.image.rootfs.diff.tar.gzip')
    return 'gzip';
  if (m === 'application/vnd.oci.image.layer.v1.tar+zstd' || m === 'application/vnd.docker.image.rootfs.diff.tar.zstd')
    return 'zstd';
  if (m === 'application/vnd.oci.image.layer.v1.tar' || m === 'application/vnd.docker.image.rootfs.diff.tar')
    return 'none';
  throw imageError(`${what}: unsupported media type "${printableValue(mediaType)}"`);
}

function refOf(d: Descriptor): string | undefined {
  return d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'];
}

function pick<T>(all: T[], names: (x: T) => string[], ref: string | undefined, what: string): T {
  const shown = all.map((x) => printableValue(names(x).join(' ') || '(unnamed)')).join(', ');
  if (ref !== undefined) {
    const hit = all.filter((x) => names(x).some((n) => n === ref || n.endsWith(`:${ref}`) || n.endsWith(`/${ref}`)));
    if (hit.length !== 1)
      throw imageError(
        `${hit.length ? 'several images' : 'no image'} named "${printableValue(ref)}" in the ${what} (it has: ${shown})`,
      );
    return hit[0]!;
  }
  if (all.length !== 1) throw imageError(`the ${what} has ${all.length} images: name one with --ref (${shown})`);
  return all[0]!;
}

interface Plan {
  info: Omit<ImageInfo, 'layers' | 'notes'>;
  diffIds: string[];
  layers: { path: string; compression: Magic; label: string; blob: string; size: number }[];
}

async function ociPlan(files: ArchiveFiles, ref: string | undefined): Promise<Plan> {
  const layoutFile = files.find('oci-layout');
  if (layoutFile) {
    const layout = parseJson(readSmall(layoutFile, 'oci-layout'), 'oci-layout');
    if (layout.imageLayoutVersion !== '1.0.0')
      throw imageError(
        `oci-layout: unsupported imageLayoutVersion ${printableValue(JSON.stringify(layout.imageLayoutVersion) ?? '')}`,
      );
  }
  const index = parseJson(readSmall(files.find('index.json')!, 'index.json'), 'index.json');
  if (!Array.isArray(index.manifests)) throw imageError('index.json has no manifests');
  let candidates = index.manifests.map((m, i) => descriptor(m, `index.json manifest ${i + 1}`));
  let d = pick(candidates, (x) => [refOf(x) ?? ''].filter(Boolean), ref, 'archive');
  const name = refOf(d);
  // an index inside (several platforms): this machine's
  for (let depth = 0; INDEX_TYPES.includes(d.mediaType); depth++) {
    if (depth > 4) throw imageError('image indexes nested too deep');
    const inner = parseJson(readSmall(await blob(files, d, 'image index'), 'an image index'), 'an image index');
    if (!Array.isArray(inner.manifests)) throw imageError(`image index ${d.digest} has no manifests`);
    candidates = inner.manifests.map((m, i) => descriptor(m, `image index manifest ${i + 1}`));
    const arch = GOARCH[process.arch] ?? process.arch;
    const mine = candidates.filter(
      (c) => (c.platform?.os ?? 'linux') === 'linux' && (c.platform?.architecture ?? arch) === arch,
    );
    if (mine.length === 0) throw imageError(`image index ${d.digest} has no manifest for linux/${arch}`);
    d = mine[0]!;
  }
  if (!MANIFEST_TYPES.includes(d.mediaType))
    throw imageError(`manifest ${d.digest}: unsupported media type "${printableValue(d.mediaType)}"`);
  const manifest = parseJson(readSmall(await blob(files, d, 'manifest'), 'the manifest'), 'the manifest');
  const configD = descriptor(manifest.config, "the manifest's config");
  const { config, diffIds } = readConfig(readSmall(await blob(files, configD, 'config'), 'the image config'));
  if (!Array.isArray(manifest.layers)) throw imageError(`manifest ${d.digest} has no layers`);
  const layers = [];
  for (const [i, l] of manifest.layers.entries()) {
    const ld = descriptor(l, `layer ${i + 1}`);
    const compression = layerCompression(ld.mediaType, `layer ${i + 1} (${ld.digest})`);
    layers.push({
      path: await blob(files, ld, `layer ${i + 1}`),
      compression,
      label: `layer ${i + 1} (${ld.digest})`,
      blob: ld.digest,
      size: ld.size,
    });
  }
  return {
    info: {
      format: 'oci',
      ...(name ? { ref: name } : {}),
      manifestDigest: d.digest,
      configDigest: configD.digest,
      config,
    },
    diffIds,
    layers,
  };
}

async function dockerPlan(files: ArchiveFiles, ref: string | undefined): Promise<Plan> {
  const text = readSmall(files.find('manifest.json')!, 'manifest.json');
  let list: unknown;
  try {
    list = JSON.parse(text.toString('utf8'));
  } catch (e) {
    throw imageError(`manifest.json is not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(list)) throw imageError('manifest.json is not a list');
  const images = list.map((x) => (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>);
  const tags = (x: Record<string, unknown>): string | undefined =>
    Array.isArray(x.RepoTags) && typeof x.RepoTags[0] === 'string' ? (x.RepoTags as string[]).join(' ') : undefined;
  const image = pick(
    images,
    (x) => (Array.isArray(x.RepoTags) ? x.RepoTags.filter((t): t is string => typeof t === 'string') : []),
    ref,
    'manifest.json',
  );
  if (typeof image.Config !== 'string') throw imageError('manifest.json: an image without Config');
  const configPath = files.find(image.Config);
  if (!configPath) throw imageError(`manifest.json: the archive has no config "${printableValue(image.Config)}"`);
  // the config's name is its digest (HEX.json, blobs/sha256/HEX): the one digest that
  // anchors the diff_ids, so it is required
  const m = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(image.Config);
  if (!m) throw imageError(`manifest.json: config "${printableValue(image.Config)}" is not named by its sha256`);
  const configDigest = `sha256:${m[1]}`;
  const got = await fileDigest(configPath, 'sha256');
  if (got !== configDigest)
    throw imageError(
      `config "${printableValue(image.Config)}": digest mismatch: its name says ${configDigest}, it is ${got}`,
    );
  const { config, diffIds } = readConfig(readSmall(configPath, 'the image config'));
  if (!Array.isArray(image.Layers) || image.Layers.some((l) => typeof l !== 'string'))
    throw imageError('manifest.json: Layers is not a list of file names');
  const layers = (image.Layers as string[]).map((name, i) => {
    const path = files.find(name);
    if (!path) throw imageError(`manifest.json: the archive has no layer "${printableValue(name)}"`);
    return {
      path,
      compression: magicOf(path),
      label: `layer ${i + 1} (${printableValue(name)})`,
      blob: name,
      size: statSync(path).size,
    };
  });
  // docker save >= 25 names layers by their digest (blobs/sha256/HEX): checked too
  for (const l of layers) {
    const byDigest = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(archiveName(l.blob));
    if (!byDigest) continue;
    const got = await fileDigest(l.path, 'sha256');
    if (got !== `sha256:${byDigest[1]}`)
      throw imageError(`digest mismatch: its name says sha256:${byDigest[1]}, the blob is ${got}`, l.label);
  }
  const name = tags(image);
  return { info: { format: 'docker-save', ...(name ? { ref: name } : {}), configDigest, config }, diffIds, layers };
}

export interface BuildOptions {
  /** Which image of several (a ref.name annotation, a RepoTag, or its tag). */
  ref?: string;
  limits: LayerLimits;
}

/**
 * Builds `root` (an empty directory) from the image in `archive` (a directory or a tar);
 * `scratch` is a folder for a tar's files (the caller removes it). Throws JY_ERR_IMAGE.
 */
export async function buildFromImage(
  archive: string,
  root: string,
  scratch: string,
  opts: BuildOptions,
): Promise<ImageInfo> {
  const files = statSync(archive).isDirectory() ? dirFiles(archive) : await tarFiles(archive, scratch, opts.limits);
  const plan = files.find('index.json')
    ? await ociPlan(files, opts.ref)
    : files.find('manifest.json')
      ? await dockerPlan(files, opts.ref)
      : undefined;
  if (!plan)
    throw imageError(
      `${printableValue(archive)} is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)`,
    );
  if (plan.diffIds.length !== plan.layers.length)
    throw imageError(`the config lists ${plan.diffIds.length} diff_ids for ${plan.layers.length} layers`);
  const tally: ApplyTally = { bytes: 0, entries: 0, notes: [] };
  const cfg = plan.info.config;
  if (cfg.os !== undefined && cfg.os !== 'linux') throw imageError(`an image for ${printableValue(cfg.os)}, not linux`);
  const arch = GOARCH[process.arch] ?? process.arch;
  if (cfg.architecture !== undefined && cfg.architecture !== arch)
    note(
      tally,
      `the image is for ${printableValue(cfg.architecture)}, this machine is ${arch}: its programs may not run here`,
    );
  const layers: ImageLayer[] = [];
  let streamed = 0;
  for (const [i, l] of plan.layers.entries()) {
    const magic = magicOf(l.path);
    if (magic !== l.compression)
      throw imageError(
        `the blob is ${magic === 'none' ? 'not compressed' : magic}, its media type says ${l.compression}`,
        l.label,
      );
    const diffId = plan.diffIds[i]!;
    const alg = diffId.split(':')[0]!;
    const h = createHash(alg);
    const feed = (c: Buffer): void => {
      h.update(c);
      streamed += c.length;
      // tar headers and padding are small: a stream far past the file cap is a bomb
      if (streamed > opts.limits.maxBytes + 1024 ** 3)
        throw new Error(
          `the layers unpack to more than ${opts.limits.maxBytes} bytes (the limit; --max-size raises it)`,
        );
    };
    await applyLayer(root, { label: l.label, tar: decompressed(l.path, magic), feed }, tally, opts.limits);
    const got = `${alg}:${h.digest('hex')}`;
    if (got !== diffId)
      throw imageError(`digest mismatch: the config's diff_id is ${diffId}, the uncompressed layer is ${got}`, l.label);
    layers.push({ blob: l.blob, diffId, compression: magic, size: l.size });
  }
  return { ...plan.info, layers, notes: tally.notes };
}
