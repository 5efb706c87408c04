// The host's own jail(8), jls(8) and `jailyard ls`, answered by the daemon: POST
// /v1/host/jail, /v1/host/jls and /v1/host/ls on its unix socket, the body being the
// command's arguments (each ending with a NUL byte, as the guest tools send theirs), the
// answer "STATUS OUTLEN ERRLEN\n" + stdout + stderr (guest-tools.ts encodeAnswer). The client
// is native/jy-ctl (bin/jail, bin/jls, bin/jailyard.js's sh line): a command then costs no
// Node start-up.
//
// The host scope is root's: the unix socket is root's 0600 one, the app refuses processes
// inside a jail on it (app.ts), and these routes answer nothing on the TCP listener. What
// the command cannot do here exactly as the CLI would (a foreground command, hooks whose
// output streams, a file named relative to the caller's folder: HostTools.run answers
// undefined) gets a 400 before anything is done; the client runs the CLI instead after any
// 4xx answer (nothing was done), and reports a 5xx as the CLI reports a lost daemon.

import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { JailyardError } from '../errors.ts';
import { sendError } from './errors.ts';
import { DEFAULT_TOOL_LIMITS, decodeArgv, encodeAnswer, type ToolIO } from './guest-tools.ts';

export type HostToolName = 'jail' | 'jls' | 'ls';
const HOST_TOOLS = new Set<string>(['jail', 'jls', 'ls']);

/** The commands as the CLI runs them (src/cli/host-front.ts hands them in). */
export interface HostTools {
  /** The exit status, with the output written to `io` as the CLI writes it to its own
   * stdout and stderr; undefined, with nothing done, when the CLI must run it itself. */
  run(tool: HostToolName, argv: string[], io: ToolIO): Promise<number | undefined>;
}

/** Output kept per stream; a longer one is cut with a note (as the guest tools do). */
function capture(max: number): { io: (t: string) => void; text: () => string } {
  const parts: string[] = [];
  let size = 0;
  let cut = false;
  return {
    io: (t) => {
      if (cut) return;
      const n = Buffer.byteLength(t);
      if (size + n > max) {
        parts.push('\n[jailyard: output cut]\n');
        cut = true;
        return;
      }
      parts.push(t);
      size += n;
    },
    text: () => parts.join(''),
  };
}

export const hostToolRoutes: FastifyPluginAsync<{ tools: HostTools }> = async (app: FastifyInstance, { tools }) => {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post<{ Params: { tool: string } }>(
    '/v1/host/:tool',
    { schema: { hide: true }, bodyLimit: DEFAULT_TOOL_LIMITS.maxBody },
    async (request, reply) => {
      // root's unix socket only (TCP clients, even with the token, are not the host's root)
      if (request.raw.socket.remoteAddress !== undefined)
        throw new JailyardError('JY_ERR_UNAUTHORIZED', 'the host tools answer on the unix socket only', {
          step: 'authorization',
        });
      const tool = request.params.tool;
      if (!HOST_TOOLS.has(tool))
        throw new JailyardError('JY_ERR_ROUTE_NOT_FOUND', `no host tool ${tool}: jail, jls, ls`, {
          step: 'route',
        });
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const argv = decodeArgv(body);
      if (typeof argv === 'string') throw new JailyardError('JY_ERR_USAGE', argv, { step: 'request' });
      const out = capture(DEFAULT_TOOL_LIMITS.maxOutput);
      const err = capture(DEFAULT_TOOL_LIMITS.maxOutput);
      const status = await tools.run(tool as HostToolName, argv, { stdout: out.io, stderr: err.io });
      if (status === undefined)
        return sendError(
          reply,
          new JailyardError('JY_ERR_USAGE', `${tool} with these arguments runs in the CLI, not in the daemon`, {
            step: 'host tools',
          }),
        );
      reply.type('application/octet-stream');
      return encodeAnswer({ status, stdout: out.text(), stderr: err.text() });
    },
  );
};
