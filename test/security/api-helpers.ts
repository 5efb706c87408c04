// Shared by the API security tests: raw bytes to a listener, whatever they are.
import { connect, type NetConnectOpts } from 'node:net';

/** What came back for raw request bytes: the status line's code, if any arrived. */
export async function rawRequest(
  target: NetConnectOpts,
  bytes: Buffer | string,
  waitMs = 400,
): Promise<{ status?: number; text: string }> {
  return new Promise((resolve) => {
    const sock = connect(target);
    let text = '';
    let settle: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      clearTimeout(settle);
      sock.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve(m ? { status: Number(m[1]), text } : { text });
    };
    const timer = setTimeout(done, waitMs);
    sock.on('data', (d) => {
      text += d.toString('latin1');
      // a head arrived: give a body a moment, then hang up (streams and keep-alive stay open)
      if (text.includes('\r\n\r\n') && !settle) settle = setTimeout(done, 30);
    });
    sock.on('error', () => {});
    sock.on('close', done);
    sock.on('connect', () => sock.write(bytes));
  });
}
