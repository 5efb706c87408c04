// The fifth red-team run (SECURITY.md; the cluster's side is test/cluster/guest-cluster): a
// real jail runs its own jail(8) against the daemon's tools on one host. A child's
// parameters had no bound but the request's 256 KiB. (The children.max race of concurrent
// jail -c did not show here on the code before: 4 at once made 1 child on one host; it is
// tested where it showed, over etcd, in guest-cluster.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SecurityHost, toolsDaemon, type ToolsDaemon } from './helpers.ts';

describe("a jail's jail(8): a child's parameters bounded", () => {
  let h: SecurityHost;
  let d: ToolsDaemon;

  before(async () => {
    h = await SecurityHost.open('ce5');
    await h.jail('ce5p', { params: ['children.max=1'] });
    d = await toolsDaemon(h, ['ce5p']);
  });
  after(async () => {
    await d?.close();
    await h?.close();
  });

  test("a child's parameters of more than 4096 bytes are refused, nothing made", async () => {
    const r = await d.run('ce5p', [
      '/bin/sh',
      '-c',
      'jail -c name=big persist "exec.start=$(head -c 100000 /dev/zero | tr "\\0" x)"',
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /jail_set: exec\.start: Operation not permitted \(the child's parameters would take \d+ bytes/,
    );
    assert.equal(d.store.getJail('ce5p.big'), undefined);
  });
});
