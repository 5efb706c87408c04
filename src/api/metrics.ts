// /metrics in the Prometheus text format (prom-client), one registry per app so several
// daemons (tests) in one process do not share counters.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WatchHub } from './hub.ts';
import type { JailState } from '../store/types.ts';
import type { SupervisorStats } from '../runtime/supervisor.ts';

export interface ApiMetrics {
  registry: Registry;
  observeRequest(route: string, method: string, status: number, seconds: number): void;
}

const STATES: JailState[] = ['stopped', 'starting', 'running', 'stopping'];

export function createMetrics(hub: WatchHub, supervisor?: SupervisorStats): ApiMetrics {
  const registry = new Registry();
  // health and restarts (docs/health.md): per jail from the records, so they agree with ls
  new Gauge({
    name: 'jailyard_jail_health',
    help: "A running jail's health check verdict: 1 for its status (starting, healthy, unhealthy)",
    labelNames: ['jail', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const j of hub.states().values()) {
        const h = j.state === 'running' ? j.supervision?.health : undefined;
        if (h) this.set({ jail: j.name, status: h.status }, 1);
      }
    },
  });
  new Counter({
    name: 'jailyard_jail_restarts_total',
    help: 'Restarts of a jail by restart.policy since it was created',
    labelNames: ['jail'],
    registers: [registry],
    collect() {
      this.reset();
      for (const j of hub.states().values()) {
        const n = j.supervision?.restarts ?? 0;
        if (n > 0) this.inc({ jail: j.name }, n);
      }
    },
  });
  new Gauge({
    name: 'jailyard_jail_restart_pending',
    help: 'Jails waiting for a restart (their back-off)',
    registers: [registry],
    collect() {
      let n = 0;
      for (const j of hub.states().values()) if (j.supervision?.pending) n++;
      this.set(n);
    },
  });
  if (supervisor) {
    new Counter({
      name: 'jailyard_health_checks_total',
      help: 'Health checks the daemon ran since it started, by result',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ result: 'ok' }, supervisor.checks.ok);
        this.inc({ result: 'failed' }, supervisor.checks.failed);
      },
    });
    new Counter({
      name: 'jailyard_restarts_total',
      help: 'Jails the daemon restarted since it started, by reason (died, exited, unhealthy)',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(supervisor.restarts)) this.inc({ reason }, n);
      },
    });
  }
  new Gauge({
    name: 'jailyard_jails',
    help: 'Jails by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
      for (const j of hub.states().values()) counts.set(j.state, (counts.get(j.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Counter({
    name: 'jailyard_events_total',
    help: 'Events read from the event log since the daemon started',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(hub.eventsTotal);
    },
  });
  new Gauge({
    name: 'jailyard_revision',
    help: 'Current global revision of the event log',
    registers: [registry],
    collect() {
      this.set(hub.revision);
    },
  });
  new Gauge({
    name: 'jailyard_watch_subscribers',
    help: 'Open watch streams (and internal subscribers)',
    registers: [registry],
    collect() {
      this.set(hub.subscriberCount);
    },
  });
  const latency = new Histogram({
    name: 'jailyard_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  return {
    registry,
    observeRequest(route, method, status, seconds) {
      latency.observe({ route, method, status: String(status) }, seconds);
    },
  };
}
