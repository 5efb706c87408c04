// npm run bench: runs every bench/*.bench.ts one after another (each in its own process).
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

// the baselines (crun, lxc, bubblewrap, busybox-static) and debootstrap are Debian packages:
// installed if missing, as `npm test` does (idempotent)
const deps = spawnSync('bash', [new URL('../scripts/system-deps.sh', import.meta.url).pathname], { stdio: 'inherit' });
if (deps.status !== 0) {
  console.error('[bench] scripts/system-deps.sh failed: the baselines may be missing');
  process.exit(1);
}

const only = process.argv.slice(2);
const files = readdirSync(new URL('.', import.meta.url))
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
let failed = 0;
for (const f of files) {
  const r = spawnSync(process.execPath, [new URL(f, import.meta.url).pathname], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`[bench] ${f} failed (exit ${r.status})`);
  }
}
process.exitCode = failed ? 1 : 0;
