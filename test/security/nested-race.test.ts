// A parent jail racing its child's start (red-team run of 2026-12-04, second pass): a child's
// root is a folder of its running parent, and the child's stage joined the parent's pid
// namespace (and forked there) before it pivoted into the child's root, so the parent could
// read /proc/PID/mountinfo of the stage's processes: the host's whole mount table, the state
// folder and other jails included (185 lines in 10 s of starts before the fix). Now every
// mount of the child is made and the root pivoted before any process of the parent's pid
// namespace exists. The same reordering closes the symlink race the red team won about once
// in 25 starts (host root's mkdir and file creation in a host folder the parent chose): the
// stage makes and mounts nothing in the child's root before the pivot, and the mounts step
// walks the parent's folder without following a link (test/platform/linux/beneath.test.ts).
// Addresses: none.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SecurityHost, toolsDaemon, type ToolsDaemon } from './helpers.ts';

/** In the jail: reads every process's mountinfo for SECS; prints the lines naming NEEDLE. */
const WATCH = `
import glob, sys, time
needle = sys.argv[1].encode(); end = time.time() + float(sys.argv[2]); seen = set()
while time.time() < end:
    for f in glob.glob("/proc/[0-9]*/mountinfo"):
        try:
            for line in open(f, "rb").read().splitlines():
                if needle in line: seen.add(line)
        except OSError:
            pass
print(len(seen))
for line in sorted(seen)[:5]: print(line.decode(errors="replace"))
`;

describe("a parent jail racing its child's start", () => {
  let h: SecurityHost;
  let d: ToolsDaemon;

  before(async () => {
    h = await SecurityHost.open('nrace');
    await h.jail('nrp', { params: ['children.max=2'] });
    d = await toolsDaemon(h, ['nrp']);
  });
  after(async () => {
    await d?.close();
    await h?.close();
  });

  /** Starts and removes a child (PREFIX1, PREFIX2, ...) with its root at DIR in the parent,
   * COUNT times. */
  const churn = (dir: string, count: number, prefix: string) =>
    d.run('nrp', [
      '/bin/sh',
      '-c',
      `i=0; while [ $i -lt ${count} ]; do i=$((i+1)); jail -c name=${prefix}$i path=${dir} persist >/dev/null 2>&1; jail -r ${prefix}$i >/dev/null 2>&1; done; true`,
    ]);

  test("the parent never reads the host's mount table from a child's stage", async () => {
    const r = await d.run('nrp', ['/bin/sh', '-c', 'mkdir -p /srv/nr4']);
    assert.equal(r.code, 0, r.stderr);
    const [watch] = await Promise.all([
      d.run('nrp', ['python3', '-c', WATCH, h.state, '10'], 60_000),
      churn('/srv/nr4', 10, 'c'),
    ]);
    assert.equal(watch.code, 0, watch.stderr);
    const [count, ...lines] = watch.stdout.trim().split('\n');
    assert.equal(count, '0', `mount lines naming the state folder seen from the parent:\n${lines.join('\n')}`);
  });
});
