// Which state folder owns which tag, host-wide. A jail's netns, veth and cgroups are named
// with a short hash of its state folder's path (stateTag: 4 hex digits), so two installs or
// two test runs on one host never collide on jy-<jid>, and reconcile recognises its own
// objects by that tag. Two folders whose paths hash to the same tag would share names:
// one's reconcile would take the other's jails for its own leftovers. So a folder claims its
// tag here (one file per tag under /run/jailyard/states holding the folder's path) before
// it makes anything, and a second existing folder with the same tag is refused, naming the
// first. A claim whose folder is gone is stale and taken over.
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { JailyardError } from '../../errors.ts';
import { stateTag } from './paths.ts';
import { HOST_RUN_DIR } from '../../layout.ts';

const DIR = `${HOST_RUN_DIR}/states`;

/** Folders whose claim this process has checked already (the check is one read per folder). */
const checked = new Set<string>();

function holderOf(tag: string): string | undefined {
  try {
    return readFileSync(`${DIR}/${tag}`, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Removes the claims of folders that are gone (a test run's temporary folders). */
function sweepStale(): void {
  let tags: string[];
  try {
    tags = readdirSync(DIR);
  } catch {
    return;
  }
  for (const t of tags) {
    const holder = holderOf(t);
    if (holder !== undefined && !existsSync(holder)) {
      try {
        unlinkSync(`${DIR}/${t}`);
      } catch {
        // taken over or removed meanwhile
      }
    }
  }
}

/**
 * Claims the tag of `state` (a state folder's absolute path) for it. Throws JY_ERR_PLATFORM
 * when another existing state folder holds the same tag.
 */
export function claimStateTag(state: string): void {
  if (checked.has(state)) return;
  const tag = stateTag(`${state}/jails/x`);
  mkdirSync(DIR, { recursive: true, mode: 0o755 });
  for (let attempt = 0; ; attempt++) {
    const holder = holderOf(tag);
    if (holder === state) break;
    if (holder !== undefined && existsSync(holder)) {
      throw new JailyardError(
        'JY_ERR_PLATFORM',
        `the state folders ${state} and ${holder} have the same tag ${tag}, which names their jails' netns, ` +
          `veths and cgroups: use another path for ${state} (or remove ${holder})`,
        { step: 'addresses' },
      );
    }
    if (attempt > 5) throw new JailyardError('JY_ERR_PLATFORM', `cannot claim ${DIR}/${tag} for ${state}`);
    if (holder === undefined) sweepStale();
    else unlinkIfStill(tag, holder);
    // made complete under a temporary name, then linked: link fails if another folder claimed
    // the tag meanwhile, and the loop reads who did
    const tmp = `${DIR}/.${tag}.${process.pid}`;
    writeFileSync(tmp, `${state}\n`);
    try {
      linkSync(tmp, `${DIR}/${tag}`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      unlinkSync(tmp);
    }
  }
  checked.add(state);
}

/** The state folder other than `self` that holds `tag` and still exists, if any. */
export function liveOtherFolder(tag: string, self: string | undefined): string | undefined {
  const holder = holderOf(tag);
  return holder !== undefined && holder !== self && existsSync(holder) ? holder : undefined;
}

/** The state folder tag an object of a jail is named with (netns jy-TAG-N, veth jyhTAGN,
 * cgroup jy-TAG-N, a process in such a cgroup), if it has one. */
export function tagOf(
  kind: 'mounts' | 'netns' | 'links' | 'cgroups' | 'pids',
  id: string | number,
): string | undefined {
  const s = String(id);
  const m =
    kind === 'netns' || kind === 'cgroups'
      ? /^jy-([0-9a-f]{4})-/.exec(s.split('/').pop() ?? '')
      : kind === 'links'
        ? /^jyh([0-9a-f]{4})/.exec(s)
        : kind === 'pids'
          ? /\/jy-([0-9a-f]{4})-/.exec(readCgroup(s))
          : null;
  return m?.[1];
}

function readCgroup(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return '';
  }
}

/** Removes a stale claim, unless it changed hands since it was read. */
function unlinkIfStill(tag: string, holder: string): void {
  if (holderOf(tag) !== holder) return;
  try {
    unlinkSync(`${DIR}/${tag}`);
  } catch {
    // gone meanwhile
  }
}
