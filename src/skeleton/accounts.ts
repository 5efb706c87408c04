// A live root's account files as a skeleton may hand them to jails: the system accounts
// (uid/gid below 1000, plus nobody/nogroup) without the host's human users, and every
// password locked. Pure text in, text out; the caller keeps the file's mode and owner.

/** The account files this module regenerates, by base name. */
export const ACCOUNT_FILES = ['passwd', 'group', 'shadow', 'gshadow', 'master.passwd'] as const;
export type AccountFile = (typeof ACCOUNT_FILES)[number];

/** Ids below this are system accounts (Debian's FIRST_UID, FreeBSD's too). */
const FIRST_HUMAN_ID = 1000;
const KEPT_HIGH = new Set(['nobody', 'nogroup']);

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

function keptId(name: string, id: string | undefined): boolean {
  const n = Number(id);
  return KEPT_HIGH.has(name) || (id !== undefined && /^\d+$/.test(id) && n < FIRST_HUMAN_ID);
}

/** Names of the accounts kept from a passwd (or master.passwd) text. */
export function keptUsers(passwd: string): Set<string> {
  const out = new Set<string>();
  for (const l of lines(passwd)) {
    const f = l.split(':');
    if (keptId(f[0]!, f[2])) out.add(f[0]!);
  }
  return out;
}

/** Names of the groups kept from a group text. */
export function keptGroups(group: string): Set<string> {
  const out = new Set<string>();
  for (const l of lines(group)) {
    const f = l.split(':');
    if (keptId(f[0]!, f[2])) out.add(f[0]!);
  }
  return out;
}

const members = (list: string | undefined, users: Set<string>): string =>
  (list ?? '')
    .split(',')
    .filter((u) => u !== '' && users.has(u))
    .join(',');

const out = (kept: string[]): string => (kept.length ? `${kept.join('\n')}\n` : '');

/**
 * The regenerated text of one account file. `users` and `groups` are the kept names
 * (from the passwd and group files next to it). Lines of dropped accounts go; shadow and
 * master.passwd get '*' (no password, login refused), gshadow '!'; group member lists keep
 * only kept users.
 */
export function regenerateAccountFile(
  kind: AccountFile,
  text: string,
  users: Set<string>,
  groups: Set<string>,
): string {
  const kept: string[] = [];
  for (const l of lines(text)) {
    const f = l.split(':');
    const name = f[0]!;
    switch (kind) {
      case 'passwd':
        if (users.has(name)) kept.push([name, 'x', ...f.slice(2)].join(':'));
        break;
      case 'master.passwd':
        if (users.has(name)) kept.push([name, '*', ...f.slice(2)].join(':'));
        break;
      case 'shadow':
        if (users.has(name)) kept.push([name, '*', ...f.slice(2)].join(':'));
        break;
      case 'group':
        if (groups.has(name)) kept.push([name, 'x', f[2] ?? '', members(f[3], users)].join(':'));
        break;
      case 'gshadow':
        if (groups.has(name)) kept.push([name, '!', members(f[2], users), members(f[3], users)].join(':'));
        break;
    }
  }
  return out(kept);
}
