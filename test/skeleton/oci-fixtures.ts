// Container images the tests build themselves (no pulls): tar streams written byte by byte
// (so hostile entries are exactly what a test asks for), OCI image layouts and docker save
// archives around them.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';

export interface TarEntry {
  name: string;
  /** '0' file (default), '1' hard link, '2' symlink, '3' char device, '5' directory, '6' FIFO. */
  type?: '0' | '1' | '2' | '3' | '5' | '6';
  data?: Buffer | string;
  link?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** The size the header claims (default: the data's). */
  size?: number;
}

function field(b: Buffer, off: number, len: number, text: string): void {
  Buffer.from(text, 'utf8').copy(b, off, 0, len);
}

function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 1, '0')}\0`;
}

/** A ustar archive of `entries`, in order, with its two end blocks. */
export function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    const h = Buffer.alloc(512);
    if (Buffer.byteLength(e.name) > 100) throw new Error(`fixture name too long: ${e.name}`);
    field(h, 0, 100, e.name);
    field(h, 100, 8, octal(e.mode ?? (type === '5' ? 0o755 : 0o644), 8));
    field(h, 108, 8, octal(e.uid ?? 0, 8));
    field(h, 116, 8, octal(e.gid ?? 0, 8));
    field(h, 124, 12, octal(e.size ?? (type === '0' ? data.length : 0), 12));
    field(h, 136, 12, octal(1_700_000_000, 12));
    field(h, 148, 8, '        ');
    field(h, 156, 1, type);
    field(h, 157, 100, e.link ?? '');
    field(h, 257, 6, 'ustar\0');
    field(h, 263, 2, '00');
    field(h, 265, 32, 'root');
    field(h, 297, 32, 'root');
    let sum = 0;
    for (const byte of h) sum += byte;
    field(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    blocks.push(h);
    if (type === '0' && data.length) {
      blocks.push(data);
      const pad = (512 - (data.length % 512)) % 512;
      if (pad) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export type Compression = 'gzip' | 'zstd' | 'none';

export interface Layer {
  tar: Buffer;
  compression?: Compression;
}

const LAYER_TYPES: Record<Compression, string> = {
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  none: 'application/vnd.oci.image.layer.v1.tar',
};

export function compress(b: Buffer, how: Compression): Buffer {
  return how === 'gzip' ? gzipSync(b) : how === 'zstd' ? zstdCompressSync(b) : b;
}

export const IMAGE_CONFIG = {
  Env: ['PATH=/bin', 'GREETING=hello'],
  Cmd: ['/bin/sh', '-c', 'echo ok'],
  WorkingDir: '/srv',
  ExposedPorts: { '8080/tcp': {} },
};

export function configJson(diffIds: string[], over: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: IMAGE_CONFIG,
      rootfs: { type: 'layers', diff_ids: diffIds },
      ...over,
    }),
  );
}

/**
 * Writes an OCI image layout of `layers` into `dir`; `tamper` may change a blob after its
 * digest went into the manifest (a bad digest).
 */
export function ociLayout(
  dir: string,
  layers: Layer[],
  opts: { ref?: string; tamper?: (blobs: Buffer[]) => void } = {},
): string {
  mkdirSync(join(dir, 'blobs/sha256'), { recursive: true });
  const put = (b: Buffer, digest = sha256(b)): string => {
    writeFileSync(join(dir, 'blobs/sha256', digest.slice('sha256:'.length)), b);
    return digest;
  };
  const blobs = layers.map((l) => compress(l.tar, l.compression ?? 'gzip'));
  const digests = blobs.map((b) => sha256(b));
  const config = configJson(layers.map((l) => sha256(l.tar)));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
      layers: layers.map((l, i) => ({
        mediaType: LAYER_TYPES[l.compression ?? 'gzip'],
        digest: digests[i],
        size: blobs[i]!.length,
      })),
    }),
  );
  opts.tamper?.(blobs);
  for (const [i, b] of blobs.entries()) put(b, digests[i]);
  const md = put(manifest);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: md,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': opts.ref ?? 'latest' },
        },
      ],
    }),
  );
  return dir;
}

/** The entries of a directory written by ociLayout, as a tar of it (what `skopeo copy
 * oci-archive:` and `docker save` >= 25 write). */
export function tarOfFiles(files: Record<string, Buffer | string>, links: Record<string, string> = {}): Buffer {
  return tar([
    ...Object.entries(files).map(([name, data]) => ({ name, data })),
    ...Object.entries(links).map(([name, link]) => ({ name, type: '2' as const, link })),
  ]);
}

/** A legacy `docker save` archive: manifest.json, HEX.json, ID/layer.tar (uncompressed);
 * the last layer is stored once and reached through a symlink, as docker does for a layer
 * two images share. */
export function dockerSave(layers: Buffer[], repoTag = 'busybox:test', over: Record<string, unknown> = {}): Buffer {
  const config = configJson(
    layers.map((l) => sha256(l)),
    over,
  );
  const cfgName = `${sha256(config).slice(7)}.json`;
  const files: Record<string, Buffer | string> = { [cfgName]: config };
  const names = layers.map((l, i) => {
    const id = createHash('sha256').update(`layer${i}`).digest('hex');
    return { id, l };
  });
  const links: Record<string, string> = {};
  for (const [i, { id, l }] of names.entries()) {
    if (i === names.length - 1 && i > 0) {
      files['shared/layer.tar'] = l;
      links[`${id}/layer.tar`] = '../shared/layer.tar';
    } else files[`${id}/layer.tar`] = l;
  }
  files['manifest.json'] = JSON.stringify([
    { Config: cfgName, RepoTags: [repoTag], Layers: names.map(({ id }) => `${id}/layer.tar`) },
  ]);
  return tarOfFiles(files, links);
}
