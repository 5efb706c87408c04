// Server-Sent Events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// the writer the daemon uses and the incremental parser the client uses.

export interface SseMessage {
  event: string;
  /** The id field when the message had one (the last event id for resuming). */
  id: string | undefined;
  data: string;
}

/** One message; `data` must not contain newlines (we always send one JSON line). */
export function sseFrame(event: string, data: string, id?: number): string {
  return `event: ${event}\n${id !== undefined ? `id: ${id}\n` : ''}data: ${data}\n\n`;
}

/** Feeds chunks, returns the complete messages; comments and `retry:` lines are skipped. */
export class SseParser {
  #buffer = '';
  #event = '';
  #id: string | undefined;
  #data: string[] = [];

  push(chunk: string): SseMessage[] {
    this.#buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = this.#buffer.search(/\r\n|\n|\r/);
      if (nl < 0) break;
      const sepLen = this.#buffer.startsWith('\r\n', nl) ? 2 : 1;
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + sepLen);
      if (line === '') {
        if (this.#data.length > 0 || this.#event) {
          out.push({ event: this.#event || 'message', id: this.#id, data: this.#data.join('\n') });
        }
        this.#event = '';
        this.#id = undefined;
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.#event = value;
      else if (field === 'data') this.#data.push(value);
      else if (field === 'id') this.#id = value;
    }
    return out;
  }
}
