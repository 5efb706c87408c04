// Line-based 3-way merge (diff3 style), pure. Matches the base against each side with a
// longest common subsequence, walks the three in step: stable runs (a line matched in all
// three) are kept, the unstable chunks between them are taken from whichever side changed,
// and are conflicts when both changed differently.

/** Lines with their terminators, so joining gives back the exact text. */
export function splitLines(text: string): string[] {
  return text === '' ? [] : text.split(/(?<=\n)/);
}

/** Beyond this many cells the LCS table is too big: treat the whole file as one chunk. */
const MAX_LCS_CELLS = 16_000_000;

/** For each index of `a`, the index of `b` it is matched to by an LCS (or -1). */
export function lcsMatch(a: string[], b: string[]): Int32Array {
  const match = new Int32Array(a.length).fill(-1);
  // common prefix and suffix cost nothing and shrink the table
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) {
    match[start] = start;
    start++;
  }
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
    match[endA] = endB;
  }
  const n = endA - start;
  const m = endB - start;
  if (n === 0 || m === 0) return match;
  if (n * m > MAX_LCS_CELLS) return match;
  // table[i][j] = LCS length of a[start+i..endA) and b[start+j..endB)
  const w = m + 1;
  const table = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * w + j] =
        a[start + i] === b[start + j]
          ? table[(i + 1) * w + j + 1]! + 1
          : Math.max(table[(i + 1) * w + j]!, table[i * w + j + 1]!);
    }
  }
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[start + i] === b[start + j]) {
      match[start + i] = start + j;
      i++;
      j++;
    } else if (table[(i + 1) * w + j]! >= table[i * w + j + 1]!) i++;
    else j++;
  }
  return match;
}

export interface Merge3Conflict {
  /** 1-based line in the base where the conflicting chunk starts. */
  baseLine: number;
  base: string[];
  ours: string[];
  theirs: string[];
}

export interface Merge3Result {
  clean: boolean;
  /** The merged text; with conflicts, git-style markers around each conflicting chunk. */
  text: string;
  conflicts: Merge3Conflict[];
}

const same = (x: string[], y: string[]): boolean => x.length === y.length && x.every((l, i) => l === y[i]);

export interface Merge3Labels {
  ours?: string;
  base?: string;
  theirs?: string;
}

/**
 * Merges `ours` and `theirs`, both derived from `base`. In jailyard: base = the old skeleton
 * version's file, ours = the jail's copy, theirs = the new skeleton version's file.
 */
export function merge3(base: string, ours: string, theirs: string, labels: Merge3Labels = {}): Merge3Result {
  const O = splitLines(base);
  const A = splitLines(ours);
  const B = splitLines(theirs);
  const mA = lcsMatch(O, A);
  const mB = lcsMatch(O, B);
  const out: string[] = [];
  const conflicts: Merge3Conflict[] = [];
  let io = 0;
  let ia = 0;
  let ib = 0;
  const nl = (lines: string[]): string[] =>
    lines.length && !lines[lines.length - 1]!.endsWith('\n')
      ? [...lines.slice(0, -1), `${lines[lines.length - 1]!}\n`]
      : lines;
  for (;;) {
    while (io < O.length && mA[io] === ia && mB[io] === ib) {
      out.push(O[io]!);
      io++;
      ia++;
      ib++;
    }
    if (io >= O.length && ia >= A.length && ib >= B.length) break;
    // the next base line matched in both sides ends this unstable chunk
    let o = io;
    while (o < O.length && (mA[o]! < 0 || mB[o]! < 0)) o++;
    const ea = o < O.length ? mA[o]! : A.length;
    const eb = o < O.length ? mB[o]! : B.length;
    const cO = O.slice(io, o);
    const cA = A.slice(ia, ea);
    const cB = B.slice(ib, eb);
    if (same(cA, cO)) out.push(...cB);
    else if (same(cB, cO) || same(cA, cB)) out.push(...cA);
    else {
      conflicts.push({ baseLine: io + 1, base: cO, ours: cA, theirs: cB });
      out.push(
        `<<<<<<< ${labels.ours ?? 'jail'}\n`,
        ...nl(cA),
        `||||||| ${labels.base ?? 'old'}\n`,
        ...nl(cO),
        '=======\n',
        ...nl(cB),
        `>>>>>>> ${labels.theirs ?? 'new'}\n`,
      );
    }
    io = o;
    ia = ea;
    ib = eb;
  }
  return { clean: conflicts.length === 0, text: out.join(''), conflicts };
}
