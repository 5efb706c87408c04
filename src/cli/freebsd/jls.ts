// jls(8): [-dhNnqsv] [-c] [-j jail] [param ...] and --libxo json[,pretty], over the jails
// the caller can see (its descendants inside a jail), names relative to it
// (usr.sbin/jls/jls.c; the output forms are src/cli/jls.ts).

import type { JailRecord } from '../../store/types.ts';
import { withDerived } from '../../runtime/params.ts';
import { formatJls, jlsJson, type JlsOptions } from '../jls.ts';
import { getopt, GetoptError } from './getopt.ts';
import type { FrontIO, ReaderScope } from './types.ts';
import { findJail, shownName, visibleJails } from './scope.ts';

const USAGE = 'jls: usage: jls [-dhNnqv] [-j jail] [param ...]\n';

/** libxo's own options (xo_parse_args): --libxo FORMAT, --libxo=FORMAT, --libxo:FLAGS. */
function libxoArgs(argv: string[]): { rest: string[]; json: boolean; pretty: boolean } | string {
  const rest: string[] = [];
  let json = false;
  let pretty = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    let spec: string | undefined;
    if (a === '--libxo') {
      spec = argv[++i];
      if (spec === undefined) return 'jls: missing libxo option';
    } else if (a.startsWith('--libxo=') || a.startsWith('--libxo:')) spec = a.slice(8);
    else {
      rest.push(a);
      continue;
    }
    for (const word of spec.split(/[,:]/)) {
      if (word === 'json') json = true;
      else if (word === 'pretty' || word === 'P') pretty = true;
      else if (word === 'text') json = false;
      // other libxo flags (warn, keys, ...) change nothing jls prints here
    }
  }
  return { rest, json, pretty };
}

export async function jlsMain(argv: string[], io: FrontIO, scope: ReaderScope): Promise<number> {
  const xo = libxoArgs(argv);
  if (typeof xo === 'string') {
    io.stderr(`${xo}\n`);
    return 1;
  }
  let parsed: ReturnType<typeof getopt>;
  try {
    parsed = getopt('jls', xo.rest, 'acdj:hNnqsv');
  } catch (e) {
    if (!(e instanceof GetoptError)) throw e;
    io.stderr(`${e.message}\n${USAGE}`);
    return 1;
  }
  let check = false;
  let jail: string | undefined;
  // jls.c's pflags: later options clear what they contradict
  let header = false;
  let nameval = false;
  let quoted = false;
  let skip = false;
  let verbose = false;
  let jailName = false;
  for (const [letter, arg] of parsed.opts) {
    switch (letter) {
      case 'a':
      case 'd':
        break; // dying jails: a jail being stopped is listed anyway
      case 'c':
        check = true;
        break;
      case 'j':
        jail = arg as string;
        break;
      case 'h':
        header = true;
        skip = verbose = false;
        break;
      case 'N':
        jailName = true;
        break;
      case 'n':
        nameval = true;
        verbose = false;
        break;
      case 'q':
        quoted = true;
        break;
      case 's':
        nameval = quoted = skip = true;
        header = verbose = false;
        break;
      case 'v':
        verbose = true;
        header = nameval = skip = false;
        break;
    }
  }
  const params = parsed.rest;
  if (check && jail === undefined) {
    io.stderr(USAGE);
    return 1;
  }

  let jails: JailRecord[];
  if (jail !== undefined) {
    const j = await findJail(scope, jail);
    if (!j) {
      if (!check) io.stderr(`jls: jail "${jail}" not found\n`);
      return 1;
    }
    if (check) return 0;
    jails = [j];
  } else jails = await visibleJails(scope);

  // children.max (0 when unset), children.cur and parent as the kernel reports them, counted
  // among the jails the caller sees; names relative to its own jail
  const derived = withDerived(jails, await visibleJails(scope));
  // inside a jail: no host path (a running child's root on the host is not the caller's to see)
  const shown = scope.root ? derived.map((j) => ({ ...j, name: shownName(scope, j.name), runtime: null })) : derived;
  const opts: JlsOptions = {
    params,
    header,
    nameval,
    quoted,
    skip,
    verbose: verbose && params.length === 0,
    jailName,
    pretty: xo.pretty,
    ...(io.stdoutTerminal ? { terminal: io.stdoutTerminal } : {}),
  };
  if (xo.json) io.stdout(`${jlsJson(shown, opts)}\n`);
  else io.stdout(formatJls(shown, opts));
  return 0;
}
