// Who is on the other end of a unix socket: node cannot ask SO_PEERCRED, so one small
// native helper (native/jy-peer.c) runs beside the daemon and answers, per accepted socket,
// the peer's pid and its mount and pid namespaces. One pipe round trip per connection.
// Without the helper (not built, not Linux) nothing can be told: `of` answers undefined.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const JY_PEER = fileURLToPath(new URL('../../native/build/jy-peer', import.meta.url));

export interface Peer {
  pid: number;
  uid: number;
  /** /proc/PID/ns links, e.g. "mnt:[4026531832]"; undefined when the process is gone. */
  mnt?: string;
  pidns?: string;
}

/** The namespaces that say a process is inside a jail (CreateFacts.nsIds). */
export interface JailNamespaces {
  mnt?: string;
  pid?: string;
}

/** Whether `peer` runs inside the jail whose namespaces are `ns`. Unknown is no. */
export function isInside(peer: Peer | undefined, ns: JailNamespaces): boolean {
  if (!peer) return false;
  return (ns.mnt !== undefined && peer.mnt === ns.mnt) || (ns.pid !== undefined && peer.pidns === ns.pid);
}

/**
 * The check a socket in a jail's guest folder makes of each connection: whether the process
 * at the other end is inside that jail (`ns`, its recorded namespaces). `true` at once when
 * nothing can be checked (no helper, no namespaces recorded: the request is handled in the
 * same tick, as without the check); else the helper's answer, undefined when the socket
 * closed meanwhile (nothing more to do for it).
 */
export function peerInJail(
  peers: PeerCheck | undefined,
  socket: Socket,
  ns: JailNamespaces | undefined,
): true | Promise<boolean | undefined> {
  if (!peers || (ns?.mnt === undefined && ns?.pid === undefined)) return true;
  const wanted = { ...(ns.mnt ? { mnt: ns.mnt } : {}), ...(ns.pid ? { pid: ns.pid } : {}) };
  return peers.of(socket).then((peer) => (socket.destroyed ? undefined : isInside(peer, wanted)));
}

/**
 * The check a privileged route makes (the in-jail jail(8), readiness): whether the process at
 * the other end is the jail's root, as jail_set(2) needs privilege on FreeBSD. `facts.rootUid` is
 * the host uid of the jail's uid 0 (CreateFacts.rootUid; unrecorded: 0, host root, which a
 * user-namespace jail started by an older jailyard then lacks until its restart). Like
 * peerInJail: `true` at once when nothing can be checked (no helper, or no namespaces
 * recorded: no jail runs), else the helper's (cached) answer, undefined when the socket
 * closed meanwhile.
 */
export function peerIsRoot(
  peers: PeerCheck | undefined,
  socket: Socket,
  facts: { nsIds?: JailNamespaces; rootUid?: number } | undefined,
): true | Promise<boolean | undefined> {
  if (!peers || (facts?.nsIds?.mnt === undefined && facts?.nsIds?.pid === undefined)) return true;
  return peers.of(socket).then((peer) => (socket.destroyed ? undefined : peer?.uid === (facts.rootUid ?? 0)));
}

export class PeerCheck {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  /** The helper answers in order. */
  readonly #waiting: Array<{ fd: number; resolve(p: Peer | undefined): void }> = [];
  readonly #cache = new WeakMap<Socket, Promise<Peer | undefined>>();
  #buffer = '';
  #dead = false;
  #own: string[] | undefined;

  private constructor(child: ChildProcessByStdio<Writable, Readable, null>) {
    this.#child = child;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.#read(chunk));
    const fail = (): void => {
      this.#dead = true;
      for (const w of this.#waiting.splice(0)) w.resolve(undefined);
    };
    child.on('exit', fail);
    child.on('error', fail);
    child.stdin.on('error', fail);
    // it must not keep the daemon alive, nor be what keeps it
    child.unref();
  }

  /** Starts the helper, or undefined where there is none. */
  static start(program = JY_PEER): PeerCheck | undefined {
    if (process.platform !== 'linux' || !existsSync(program)) return undefined;
    return new PeerCheck(spawn(program, [], { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  /** The peer of an accepted unix socket (asked once per socket). */
  of(socket: Socket): Promise<Peer | undefined> {
    let p = this.#cache.get(socket);
    if (!p) {
      p = this.#ask(socket);
      this.#cache.set(socket, p);
    }
    return p;
  }

  /** The daemon's own mount and pid namespaces. */
  own(): string[] {
    this.#own ??= ['mnt', 'pid'].flatMap((kind) => {
      try {
        return [readlinkSync(`/proc/self/ns/${kind}`)];
      } catch {
        return [];
      }
    });
    return this.#own;
  }

  close(): void {
    this.#dead = true;
    this.#child.stdin.end();
    this.#child.kill();
  }

  #ask(socket: Socket): Promise<Peer | undefined> {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (this.#dead || typeof fd !== 'number' || fd < 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      // A socket that closes before the answer is never served, so an answer about whatever
      // reused its descriptor number meanwhile serves nobody.
      this.#waiting.push({ fd, resolve });
      this.#child.stdin.write(`${fd}\n`);
    });
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const nl = this.#buffer.indexOf('\n');
      if (nl < 0) return;
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      const w = this.#waiting.shift();
      if (!w) continue;
      const [fd, pid, uid, mnt, pidns] = line.split(' ');
      if (Number(fd) !== w.fd || pid === '-' || pid === undefined) {
        w.resolve(undefined);
        continue;
      }
      w.resolve({
        pid: Number(pid),
        uid: Number(uid),
        ...(mnt && mnt !== '-' ? { mnt } : {}),
        ...(pidns && pidns !== '-' ? { pidns } : {}),
      });
    }
  }
}
