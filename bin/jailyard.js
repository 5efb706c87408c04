#!/usr/bin/env node
// The jailyard command. Runs the compiled CLI when it was built (npm pack, npm run build),
// otherwise the TypeScript sources directly (Node 24 strips the types). Started by an older
// Node (the machine's own), it hands over to the Node 24 that npm installed beside it.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const local = fileURLToPath(new URL('../node_modules/.bin/node', import.meta.url));
  if (!existsSync(local)) {
    process.stderr.write(`jailyard: needs Node >= 24 (this is ${process.version}); run npm install first\n`);
    process.exit(1);
  }
  const r = spawnSync(local, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const built = new URL('../dist/cli/main.js', import.meta.url);
const entry = existsSync(built) ? built.href : new URL('../src/cli/main.ts', import.meta.url).href;
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
