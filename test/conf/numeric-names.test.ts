// jail.conf blocks named by a number (config.c, jail_basic_test.sh's jid_name_set): the block
// is the jail with that jid; its name is the number unless the block sets `name`, and
// `${name}` reads whichever name the jail ends up with. The store takes a numeric name only
// as the jail's own jid.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfString } from '../../src/conf/evaluate.ts';
import { JailyardError } from '../../src/errors.ts';
import { openStore } from '../../src/store/sqlite.ts';
import { validateJailName } from '../../src/store/names.ts';

const noIncludes = { include: undefined };
const parse = (text: string) => parseConfString(text, 't.conf', noIncludes);

describe('numeric jail.conf blocks', () => {
  test('a numeric block without name: name and ${name} are the jid', () => {
    const [spec] = parse('5309 { host.hostname = "${name}"; persist; }');
    assert.equal(spec?.name, '5309');
    assert.equal(spec?.block, undefined);
    assert.deepEqual(spec?.params, { jid: 5309, name: '5309', 'host.hostname': '5309', persist: true });
  });

  test('a numeric block with name: the name param wins, the block is kept, jid stays', () => {
    const [spec] = parse('5309 { name = basejail; host.hostname = "h-${name}"; persist; }');
    assert.equal(spec?.name, 'basejail');
    assert.equal(spec?.block, '5309');
    assert.deepEqual(spec?.params, { jid: 5309, name: 'basejail', 'host.hostname': 'h-basejail', persist: true });
  });

  test('a wildcard section sees the numeric name, and a named block keeps jid = N', () => {
    const specs = parse('* { host.hostname = "x${name}"; }\n7 { }\nbasejail { jid = 5309; persist; }');
    assert.deepEqual(
      specs.map((s) => [s.name, s.params]),
      [
        ['7', { jid: 7, name: '7', 'host.hostname': 'x7' }],
        ['basejail', { name: 'basejail', 'host.hostname': 'xbasejail', jid: 5309, persist: true }],
      ],
    );
  });

  test('a numeric block cannot redefine its jid', () => {
    assert.throws(
      () => parse('5309 { jid = 12; }'),
      (e) => e instanceof JailyardError && e.code === 'JY_ERR_PARAM_VALUE' && e.place.param === 'jid',
    );
  });

  test("a numeric block's name may not be another block's", () => {
    assert.throws(
      () => parse('basejail { persist; }\n5309 { name = basejail; }'),
      (e) =>
        e instanceof JailyardError &&
        e.code === 'JY_ERR_JAIL_NAME' &&
        e.place.pos?.line === 2 &&
        /already defined by block "basejail"/.test(e.message),
    );
  });

  test("a numeric block's name follows a block name's rules: no wildcard, no empty component (fuzz: it could not be printed)", () => {
    for (const bad of ['"*/basejail"', 'a*', '"a..b"']) {
      assert.throws(
        () => parse(`5309 {\n  persist;\n  name = ${bad};\n}`),
        (e) =>
          e instanceof JailyardError &&
          e.code === 'JY_ERR_JAIL_NAME' &&
          e.place.param === 'name' &&
          e.place.pos?.line === 3 &&
          e.place.pos?.col === 3,
        bad,
      );
    }
  });
});

describe('numeric names in the store', () => {
  test('a numeric name is valid only as the jail jid', () => {
    validateJailName('5309', 5309);
    validateJailName('a.12', 12);
    for (const [name, jid] of [
      ['5309', undefined],
      ['5309', 5310],
      ['a.12', undefined],
    ] as const) {
      assert.throws(
        () => validateJailName(name, jid),
        (e) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NAME',
      );
    }
  });

  test('create, resolve by jid, jid in use, a jid parameter cannot leave a numeric name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jy-numnames-'));
    const store = openStore(dir);
    try {
      assert.throws(
        () => store.createJail({ name: '5309', params: { persist: true } }),
        (e) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NAME',
      );
      store.createJail({ name: '5309', params: { jid: 5309, name: '5309' } });
      store.createJail({ name: 'basejail', params: { jid: 5310, name: 'basejail' } });
      store.createJail({ name: 'plain', params: { name: 'plain' } });
      // stopped: a number finds the jail named so, then the jail whose jid parameter asks for it
      assert.equal(store.resolveJail('5309')?.name, '5309');
      assert.equal(store.resolveJail('5310')?.name, 'basejail');
      assert.equal(store.resolveJail('1'), undefined);
      assert.throws(
        () => store.requireJailRef('1'),
        (e) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NOT_FOUND' && e.place.jail === '1',
      );
      // starting takes the jid parameter; another jail asking for a held jid is refused
      assert.equal(store.transition('basejail', 'stopped', 'starting').jid, 5310);
      assert.equal(store.transition('plain', 'stopped', 'starting').jid, 1);
      assert.equal(store.resolveJail('1')?.name, 'plain');
      assert.equal(store.resolveJail('plain')?.jid, 1);
      store.modifyJail('5309', {}); // unchanged jid: fine
      assert.throws(
        () => store.modifyJail('5309', { params: { jid: 1 } }),
        (e) => e instanceof JailyardError && e.code === 'JY_ERR_JAIL_NAME',
      );
      store.createJail({ name: 'other', params: { jid: 5310 } });
      assert.throws(
        () => store.transition('other', 'stopped', 'starting'),
        (e) =>
          e instanceof JailyardError &&
          e.code === 'JY_ERR_JAIL_EXISTS' &&
          e.place.jail === 'other' &&
          e.place.param === 'jid' &&
          /jid 5310 is in use by jail "basejail"/.test(e.message),
      );
      assert.equal(store.requireJail('other').state, 'stopped');
      // the jid of a running jail comes first: a stopped jail asking for it is not found by it
      assert.equal(store.resolveJail('5310')?.name, 'basejail');
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
