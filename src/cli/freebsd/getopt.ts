// getopt(3) as FreeBSD's commands use it: clustered flags (-qc), an option's argument
// attached (-jj) or in the next word (-j j), the first word that is not an option (or "--")
// ends the options. Errors read as FreeBSD's getopt prints them.

export interface Parsed {
  /** Options in command-line order: [letter, argument or undefined]. */
  opts: [string, string | undefined][];
  /** The words after the options. */
  rest: string[];
}

export class GetoptError extends Error {}

/** `spec` is getopt's optstring: a letter, followed by ':' when it takes an argument. */
export function getopt(prog: string, argv: readonly string[], spec: string): Parsed {
  const opts: [string, string | undefined][] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') {
      i++;
      break;
    }
    if (word.length < 2 || !word.startsWith('-')) break;
    for (let k = 1; k < word.length; k++) {
      const letter = word[k] as string;
      const at = letter === ':' ? -1 : spec.indexOf(letter);
      if (at < 0) throw new GetoptError(`${prog}: illegal option -- ${letter}`);
      if (spec[at + 1] !== ':') {
        opts.push([letter, undefined]);
        continue;
      }
      if (k + 1 < word.length) opts.push([letter, word.slice(k + 1)]);
      else if (i + 1 < argv.length) opts.push([letter, argv[++i] as string]);
      else throw new GetoptError(`${prog}: option requires an argument -- ${letter}`);
      break;
    }
  }
  return { opts, rest: argv.slice(i) };
}
