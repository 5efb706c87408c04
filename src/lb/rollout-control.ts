// What the daemon's /v1/rollouts routes (src/api/routes/rollouts.ts) do to rollouts, handed
// to them by `jailyard serve` (the API does not import the load balancer: test/layering.test.ts):
// who runs a rollout, an abort request to that process, an abort the daemon runs itself when
// nobody runs it, and HAProxy's own view of a backend.

import type { PoolServer, RolloutControl } from '../api/routes/rollouts.ts';
import { JailyardError } from '../errors.ts';
import type { JailService } from '../runtime/types.ts';
import { SERVER_PREFIX } from './controller.ts';
import { HaproxyRuntime, serverStatus } from './haproxy-runtime.ts';
import { abortRollout, readRolloutState } from './rollout.ts';
import { abortRequested, requestAbort, rolloutActive } from './rollout-owner.ts';

/** How long the pool view waits for HAProxy's admin socket. */
const HAPROXY_TIMEOUT_MS = 2000;

export const rolloutControl: RolloutControl = {
  live: (stateFile) => ({
    active: rolloutActive(stateFile) !== undefined,
    abortRequested: abortRequested(stateFile),
  }),
  requestAbort: (stateFile) => requestAbort(stateFile, 'the API'),
  abort: (stateFile: string, service: JailService, log?: (line: string) => void) => {
    const state = readRolloutState(stateFile);
    if (!state) throw new JailyardError('JY_ERR_ROLLOUT_NOT_FOUND', `no rollout saved in ${stateFile}`);
    // claims the owner file before its first await: taken meanwhile → rejected at once
    return abortRollout(state, {
      service,
      stateFile,
      ...(state.lb ? { lb: state.lb } : {}),
      ...(log ? { progress: log } : {}),
    });
  },
  pool: async (adminSocket, backend): Promise<PoolServer[]> => {
    const rt = new HaproxyRuntime(adminSocket, { timeoutMs: HAPROXY_TIMEOUT_MS });
    const [states, stats] = await Promise.all([rt.showServersState(backend), rt.showStat(backend)]);
    return states.map((s) => {
      const st = stats.find((x) => x.svname === s.name);
      return {
        server: s.name,
        ...(s.name.startsWith(SERVER_PREFIX) ? { jail: s.name.slice(SERVER_PREFIX.length) } : {}),
        addr: s.addr,
        port: Number.isFinite(s.port) ? s.port : 0,
        status: serverStatus(s),
        sessions: Number(st?.scur || 0) + Number(st?.qcur || 0),
      };
    });
  },
};
