// The spawner's wire values are named on both sides: native/jy-spawner.h for the C helper,
// SPAWNER_WIRE in src/platform/linux/spawner.ts for node. The two must name the same values,
// and the helper must refuse what is not on the wire (it exits 125 with a message on stderr).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SPAWNER_WIRE } from '../../../src/platform/linux/spawner.ts';
import { JY_SPAWNER } from '../../../src/platform/linux/native.ts';

const HEADER = new URL('../../../native/jy-spawner.h', import.meta.url);

/** The SPAWNER_* defines of the header, by name without the prefix: 'S' -> "S", 1 -> 1,
 * (1u << 20) -> 1048576. Anything else fails the test rather than being skipped. */
function headerValues(): Record<string, string | number> {
  const values: Record<string, string | number> = {};
  for (const line of readFileSync(HEADER, 'utf8').split('\n')) {
    const m = /^#define SPAWNER_(\w+)\s+(.*?)\s*(?:\/\*.*)?$/.exec(line);
    if (!m) continue;
    const [, name, text] = m as unknown as [string, string, string];
    const char = /^'(.)'$/.exec(text);
    const shift = /^\((\d+)u? << (\d+)\)$/.exec(text);
    if (char) values[name] = char[1]!;
    else if (shift) values[name] = Number(shift[1]) << Number(shift[2]);
    else if (/^\d+$/.test(text)) values[name] = Number(text);
    else assert.fail(`native/jy-spawner.h: SPAWNER_${name} has a value this test cannot read: ${text}`);
  }
  return values;
}

test('native/jy-spawner.h and SPAWNER_WIRE name the same values', () => {
  const fromHeader = headerValues();
  assert.ok(Object.keys(fromHeader).length >= 10, 'the header defines the wire values');
  assert.deepEqual(fromHeader, { ...SPAWNER_WIRE });
});

test('the helper refuses a frame it does not know, with its message and status 125', () => {
  const frame = (body: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(body.length, 0);
    return Buffer.concat([len, body]);
  };
  const cases: [Buffer, string][] = [
    [frame(Buffer.from('Z\0\0\0\0')), `jy-spawner: unknown request ${'Z'.charCodeAt(0)}\n`],
    [frame(Buffer.alloc(0)), 'jy-spawner: bad frame length 0\n'],
    [frame(Buffer.from(`${SPAWNER_WIRE.REQ_SPAWN}\x01\0\0\0`)), 'jy-spawner: malformed request\n'],
  ];
  for (const [input, message] of cases) {
    const r = spawnSync(JY_SPAWNER, [], { input, encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 125, `${JSON.stringify(input.toString('latin1'))}: ${r.stderr}`);
    assert.equal(r.stderr, message);
  }
});
