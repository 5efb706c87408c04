import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, sseFrame } from '../../src/api/sse.ts';

test('SSE frames parse back across arbitrary chunk boundaries', () => {
  const text = `: hi\nretry: 1000\n\n${sseFrame('ADDED', '{"a":1}', 5)}${sseFrame('BOOKMARK', '{"r":6}', 6)}${sseFrame('MODIFIED', '{}')}`;
  for (let cut = 0; cut < text.length; cut++) {
    const p = new SseParser();
    const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
    assert.deepEqual(got, [
      { event: 'ADDED', id: '5', data: '{"a":1}' },
      { event: 'BOOKMARK', id: '6', data: '{"r":6}' },
      { event: 'MODIFIED', id: undefined, data: '{}' },
    ]);
  }
});

test('SSE parser accepts CRLF and multi-line data', () => {
  const p = new SseParser();
  assert.deepEqual(p.push('event: x\r\ndata: a\r\ndata: b\r\n\r\n'), [{ event: 'x', id: undefined, data: 'a\nb' }]);
});
