// The HAProxy controller: keeps a backend's servers equal to the RUNNING jails that match a
// label selector (and are not marked for draining), enabling each only once HAProxy's own
// health check passed (and, for jails labelled jailyard.lb/readiness=guest, once the jail
// signalled ready), and removing each only after it drained. Every event and a periodic
// tick run the same full reconcile (desired set vs `show servers state`), so a missed event
// or a failed Runtime API command cannot leave a wrong pool for long.

import { JailyardError, describeError } from '../errors.ts';
import { parseSelector } from '../meta/selector.ts';
import { paramList } from '../conf/spec.ts';
import { parentName } from '../runtime/jailplan.ts';
import { CHECK_TIMING, sleep } from './haproxy-process.ts';
import {
  ADMIN_FDRAIN,
  ADMIN_FMAINT,
  CHECK_PASSED,
  HaproxyRuntime,
  isServing,
  type ServerState,
} from './haproxy-runtime.ts';
import type { JailSource, LbJail } from './source.ts';

/** Label that takes a running jail out of the pool (drained, then deleted) while it keeps
 * running: what `rollout` sets before it stops an old jail. */
export const DRAIN_LABEL = 'jailyard.lb/drain';
/** Label choosing what a jail must pass before it gets traffic. Absent: HAProxy's check.
 * `guest`: HAProxy's check AND the jail's own ready signal (PUT /ready on its guest socket).
 * `health`: HAProxy's check AND the daemon's health check says healthy (docs/health.md). */
export const READINESS_LABEL = 'jailyard.lb/readiness';
/** Label naming the port a jail serves on (else the controller's `port` option). */
export const PORT_LABEL = 'port';
/** Prefix of the servers the controller owns; others in the backend are left alone. */
export const SERVER_PREFIX = 'jy-';

export function serverNameOf(jail: string): string {
  return SERVER_PREFIX + jail.replace(/[^A-Za-z0-9._-]/g, '_');
}

export interface DesiredServer {
  server: string;
  jail: string;
  addr: string;
  port: number;
  /** Labelled jailyard.lb/readiness=guest: gets traffic only once the jail said it is ready. */
  gated: boolean;
  /** Gated and not (or no longer) ready: its server is added (so its check runs) but stays
   * in maintenance; a serving one is drained. */
  awaitingReady: boolean;
}

/** Why a nested jail is no server unless asked for: its labels are its parent jail's to
 * write (a jail's own jail(8) sets its children's meta), so a jail could put a child of its
 * own, at its own address, into another service's pool. */
export const NESTED_REASON = "a nested jail (its labels are its parent jail's to write): lb --nested serves them";

/**
 * The servers a set of jails should give (pure): running, matching, not draining, with an
 * ip4 address and a port, and top-level unless `nested`. Jails that match but cannot be
 * served are reported in `skipped`.
 */
export function desiredServers(
  jails: Iterable<LbJail>,
  selector: string,
  defaultPort: number | undefined,
  opts: { nested?: boolean } = {},
): { servers: Map<string, DesiredServer>; skipped: { jail: string; reason: string }[] } {
  const sel = parseSelector(selector);
  const servers = new Map<string, DesiredServer>();
  const skipped: { jail: string; reason: string }[] = [];
  for (const j of jails) {
    if (j.state !== 'running' || !sel.matches(j.labels)) continue;
    if (!opts.nested && parentName(j.name) !== undefined) {
      skipped.push({ jail: j.name, reason: NESTED_REASON });
      continue;
    }
    const readiness = j.labels[READINESS_LABEL];
    if (readiness !== undefined && readiness !== '' && readiness !== 'guest' && readiness !== 'health') {
      skipped.push({
        jail: j.name,
        reason: `invalid ${READINESS_LABEL} label "${readiness}" (guest, health, or no label)`,
      });
      continue;
    }
    if (j.labels[DRAIN_LABEL] !== undefined && j.labels[DRAIN_LABEL] !== '' && j.labels[DRAIN_LABEL] !== 'false')
      continue;
    const addr = paramList(j.params, 'ip4.addr')
      .flatMap((a) => a.split(','))
      .map((a) =>
        a
          .trim()
          .replace(/\/\d+$/, '')
          .replace(/^[^|]*\|/, ''),
      )
      .find((a) => a !== '');
    if (!addr) {
      skipped.push({ jail: j.name, reason: 'no ip4.addr' });
      continue;
    }
    const portText = j.labels[PORT_LABEL];
    const port = portText !== undefined ? Number(portText) : defaultPort;
    if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
      skipped.push({
        jail: j.name,
        reason: portText !== undefined ? `invalid port label "${portText}"` : 'no port label and no --port',
      });
      continue;
    }
    const gated = readiness === 'guest' || readiness === 'health';
    servers.set(serverNameOf(j.name), {
      server: serverNameOf(j.name),
      jail: j.name,
      addr,
      port,
      gated,
      awaitingReady: readiness === 'health' ? j.health !== 'healthy' : gated && !j.ready,
    });
  }
  return { servers, skipped };
}

export interface ControllerOptions {
  source: JailSource;
  selector: string;
  backend: string;
  adminSocket: string;
  /** Port for jails without a `port` label. */
  port?: number;
  /** Nested jails matching the selector are servers too (their parent jails write their
   * labels); by default they are skipped. */
  nested?: boolean;
  signal: AbortSignal;
  /** Longest wait for a draining server's sessions to end before they are cut (default 30 s). */
  drainTimeoutMs?: number;
  /** Reconcile at least this often (default 200 ms): picks up passed health checks. */
  tickMs?: number;
  log?: (line: string) => void;
}

/** Runs until `signal` aborts. Servers stay in HAProxy when the controller stops. */
export async function runHaproxyController(o: ControllerOptions): Promise<void> {
  parseSelector(o.selector); // a bad selector fails now, with its column
  const rt = new HaproxyRuntime(o.adminSocket);
  const log = o.log ?? (() => {});
  const jails = new Map<string, LbJail>();
  const draining = new Map<string, Promise<void>>();
  const skippedLogged = new Set<string>();
  let synced = false;
  let dirty = true;
  let wake: (() => void) | undefined;
  const poke = () => {
    dirty = true;
    wake?.();
  };

  const drain = async (s: ServerState): Promise<void> => {
    const name = s.name;
    try {
      const neverServed = (s.adminState & ADMIN_FMAINT) !== 0;
      if (!neverServed) {
        if ((s.adminState & ADMIN_FDRAIN) === 0) {
          await rt.setServerState(o.backend, name, 'drain');
          log(`drain ${name}`);
        }
        const deadline = Date.now() + (o.drainTimeoutMs ?? 30_000);
        while ((await rt.sessionsOf(o.backend, name)) > 0 && Date.now() < deadline && !o.signal.aborted)
          await sleep(50);
      }
      await rt.setServerState(o.backend, name, 'maint');
      // `del server` also needs no idle connection: retry while HAProxy releases them, then
      // cut what is left.
      for (let attempt = 0; ; attempt++) {
        try {
          await rt.deleteServer(o.backend, name);
          break;
        } catch (e) {
          if (attempt === 20) await rt.shutdownSessions(o.backend, name);
          if (attempt >= 40 || o.signal.aborted) throw e;
          await sleep(100);
        }
      }
      log(`removed ${name}`);
    } catch (e) {
      log(`removing ${name} failed: ${describeError(e)}`);
    }
  };

  const reconcile = async (): Promise<void> => {
    const { servers: desired, skipped } = desiredServers(jails.values(), o.selector, o.port, {
      ...(o.nested ? { nested: true } : {}),
    });
    for (const s of skipped) {
      const key = `${s.jail}:${s.reason}`;
      if (!skippedLogged.has(key)) log(`skip jail ${s.jail}: ${s.reason}`);
      skippedLogged.add(key);
    }
    const actual = (await rt.showServersState(o.backend)).filter((s) => s.name.startsWith(SERVER_PREFIX));
    const actualByName = new Map(actual.map((s) => [s.name, s]));
    for (const s of actual) {
      if (draining.has(s.name)) continue;
      const want = desired.get(s.name);
      // a changed address counts as a different server: drain the old one, add anew; so does
      // a serving jail that lost its readiness (restarted): it comes back once ready again
      const lostReadiness = want?.awaitingReady && (s.adminState & ADMIN_FMAINT) === 0;
      if (!want || want.addr !== s.addr || want.port !== s.port || lostReadiness) {
        const p = drain(s).finally(() => {
          draining.delete(s.name);
          poke();
        });
        draining.set(s.name, p);
        continue;
      }
      // added and checked, not yet enabled: enable once HAProxy's check passed (and the
      // jail said it is ready, when it is gated on that)
      if ((s.adminState & ADMIN_FMAINT) !== 0 && s.checkResult === CHECK_PASSED && !want.awaitingReady) {
        await rt.enableServer(o.backend, s.name);
        log(`ready ${s.name} (${s.addr}:${s.port}, check passed${want.gated ? ', jail ready' : ''})`);
      }
    }
    for (const want of desired.values()) {
      if (actualByName.has(want.server) || draining.has(want.server)) continue;
      await rt.addServer(o.backend, want.server, want.addr, want.port, { check: true, ...CHECK_TIMING });
      await rt.enableHealth(o.backend, want.server);
      log(
        `add ${want.server} ${want.addr}:${want.port} (jail ${want.jail}), waiting for its check${want.gated ? " and the jail's ready signal" : ''}`,
      );
    }
  };

  const consume = async (): Promise<void> => {
    while (!o.signal.aborted) {
      try {
        for await (const e of o.source.events(o.selector, o.signal)) {
          if (e.type === 'SYNC') {
            jails.clear();
            for (const j of e.jails) jails.set(j.name, j);
            synced = true;
          } else if (e.type === 'DELETED') {
            jails.delete(e.jail.name);
          } else {
            jails.set(e.jail.name, e.jail);
          }
          poke();
        }
      } catch (e) {
        if (o.signal.aborted) return;
        log(`source failed: ${describeError(e)}; restarting in 1 s`);
        await sleep(1000);
      }
    }
  };

  const onAbort = () => wake?.();
  o.signal.addEventListener('abort', onAbort);
  const consuming = consume();
  const tickMs = o.tickMs ?? 200;
  let lastError = '';
  try {
    while (!o.signal.aborted) {
      // never reconcile against an empty picture: that would drain the whole pool at start
      if (synced && dirty) {
        dirty = false;
        try {
          await reconcile();
          lastError = '';
        } catch (e) {
          dirty = true;
          const text = describeError(e);
          if (text !== lastError) log(`reconcile failed: ${text}`);
          lastError = text;
        }
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(() => {
          dirty = true;
          done();
        }, tickMs);
        wake = done;
        if (o.signal.aborted) done();
      });
    }
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    await consuming;
    await Promise.all(draining.values());
  }
}

/** Waits until `server` is in the backend and serving (UP, no maint/drain), or throws. */
export async function waitForServer(
  rt: HaproxyRuntime,
  backend: string,
  server: string,
  want: 'serving' | 'absent',
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // stopped (a signal, an abort request): the caller says why
    if (signal?.aborted) return;
    const s = (await rt.showServersState(backend)).find((x) => x.name === server);
    if (want === 'absent' ? !s : s !== undefined && isServing(s)) return;
    if (Date.now() > deadline) {
      throw new JailyardError(
        want === 'serving' ? 'JY_ERR_UNHEALTHY' : 'JY_ERR_HAPROXY',
        want === 'serving'
          ? `server ${backend}/${server} did not become UP within ${timeoutMs} ms`
          : `server ${backend}/${server} still in the pool after ${timeoutMs} ms`,
        { step: `haproxy server ${backend}/${server}` },
      );
    }
    await sleep(100);
  }
}
