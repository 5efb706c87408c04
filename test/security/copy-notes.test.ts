// Red-team run 4: what a copy leaves out (a FIFO, a socket, a device; an entry changed while
// copied) is reported as a note naming the entry: `snapshot create`, `clone` and `export`
// printed the jailed root's file names as they were, so a FIFO named
// "x<ESC>]0;pwned<BEL><LF>rt4n1: note: ..." retitled the operator's window (any OSC: an
// OSC 52 clipboard write too) and made up a line of output. The first run's terminal rule
// (SECURITY.md, "operator's terminal") holds for these notes now, and for error messages:
// every control character is escaped (\x1b, \n), one note per line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecurityHost } from './helpers.ts';

let h: SecurityHost;
let work: string;

before(async () => {
  h = await SecurityHost.open('rt4-notes');
  work = mkdtempSync(join(tmpdir(), 'jy-rt4-notes-work-'));
});

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await h.close();
});

/** Control characters a terminal must never get from a jail (a newline only ends a line). */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

test("a jail's file names in the notes of snapshot, clone and export reach the terminal escaped, one line each", {
  timeout: 180_000,
}, async () => {
  await h.jail('rt4n1');
  // a FIFO and a socket (both left out of a copy) with names made of escapes and a newline
  const r = await h.sh(
    'rt4n1',
    [
      `mkfifo "/var/$(printf 'x\\033]0;pwned\\007\\nrt4n1: note: everything was copied')"`,
      `mkfifo "/var/$(printf 'y\\302\\233')2J"`,
      // a name that is not UTF-8 (read as a string: a\ufffdb, which names nothing) and the
      // UTF-8 name it would be read as: a copy failed with ENOENT, or took one for the other
      `printf jail-raw > "/var/$(printf 'a\\377b')"`,
      `printf jail-utf8 > "/var/$(printf 'a\\357\\277\\275b')"`,
      'ls /var | wc -l',
    ].join(' && '),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await h.jy('stop', 'rt4n1')).code, 0);

  const runs = [
    ['snapshot', 'create', 'rt4n1', 's1'],
    ['clone', 'rt4n1', 'rt4n2'],
    ['export', 'rt4n1', '-o', join(work, 'rt4n1.tar.zst')],
  ];
  for (const args of runs) {
    const c = await h.jy(...args);
    if (args[0] === 'clone') h.jails.add('rt4n2');
    assert.equal(c.code, 0, `${args.join(' ')}: ${c.stderr}`);
    const text = c.stdout + c.stderr;
    assert.match(text, /x\\x1b\]0;pwned\\x07\\nrt4n1: note: everything was copied/, `${args[0]}: the name, escaped`);
    assert.doesNotMatch(
      text,
      RAW_CONTROL,
      `${args[0]}: a control character reached the output: ${JSON.stringify(text)}`,
    );
    assert.ok(
      !text.split('\n').some((l) => l.startsWith('rt4n1: note: everything')),
      `${args[0]}: a line the jail made up`,
    );
  }
  // the copies hold both files, each with its own content and name (bytes)
  for (const dir of [join(h.jailDir('rt4n1'), 'snapshots', 's1'), h.jailDir('rt4n2')]) {
    const found = new Map<string, string>();
    const walk = (p: Buffer): void => {
      for (const e of readdirSync(p, { encoding: 'buffer', withFileTypes: true })) {
        const q = Buffer.concat([p, Buffer.from('/'), e.name]);
        if (e.isDirectory()) walk(q);
        else if (e.isFile() && /^a(\xff|\u00ef\u00bf\u00bd)b$/.test(e.name.toString('latin1')))
          found.set(e.name.toString('hex'), readFileSync(q, 'utf8'));
      }
    };
    walk(Buffer.from(dir));
    assert.deepEqual(
      Object.fromEntries(found),
      { '61ff62': 'jail-raw', '61efbfbd62': 'jail-utf8' },
      `${dir}: both files, as the jail wrote them`,
    );
  }
});
