// Building a Debian tree with debootstrap (apt's /usr/sbin/debootstrap), reporting progress
// from its "I: ..." lines: each package is retrieved, validated, extracted, unpacked and
// configured, so five lines per package; the package count is known once retrieval ends.
// The Linux driver runs it (src/platform/linux/debootstrap.ts); what is here is pure.

export interface DebootstrapProgress {
  phase: string;
  done: number;
  total: number;
}

const PHASES = ['Retrieving', 'Validating', 'Extracting', 'Unpacking', 'Configuring'] as const;
/** bookworm's minbase is ~90 packages: the first guess until retrieval tells. */
const GUESSED_PACKAGES = 90;

/** Line-by-line state of a debootstrap run. Pure: feed it lines, read progress. */
export class DebootstrapTracker {
  private counts = new Map<string, number>();
  private retrieved = new Set<string>();
  private retrievalDone = false;
  phase = 'starting';

  /** Returns the progress after this line, or undefined when the line says nothing new. */
  feed(line: string): DebootstrapProgress | undefined {
    const m = /^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) ([^\s.]\S*?)(?:\.\.\.)?(?: (\S+))?$/.exec(
      line.trim(),
    );
    if (m) {
      const phase = m[1]!;
      const pkg = m[2]!;
      // "Retrieving Release", "Retrieving Packages" are index files, not packages
      if (phase === 'Retrieving' && m[3] === undefined) return undefined;
      if (phase === 'Retrieving') this.retrieved.add(pkg);
      else if (!this.retrievalDone && phase !== 'Validating') this.retrievalDone = true;
      this.counts.set(phase, (this.counts.get(phase) ?? 0) + 1);
      this.phase = phase;
      return this.progress();
    }
    if (/^I: Base system installed successfully/.test(line)) {
      this.phase = 'done';
      const p = this.progress();
      return { ...p, done: p.total };
    }
    return undefined;
  }

  progress(): DebootstrapProgress {
    const n = this.retrievalDone ? this.retrieved.size : Math.max(GUESSED_PACKAGES, this.retrieved.size);
    const total = n * PHASES.length;
    let done = 0;
    for (const p of PHASES) done += Math.min(this.counts.get(p) ?? 0, n);
    return { phase: this.phase, done: Math.min(done, total), total };
  }
}

export interface DebootstrapOptions {
  suite: string;
  target: string;
  mirror?: string;
  variant?: string;
  /** Path of the debootstrap program (default /usr/sbin/debootstrap). */
  program?: string;
  onProgress?: (p: DebootstrapProgress) => void;
}

/** The mirror apt uses (first deb.debian.org-style URI of a Debian source), if any. */
export function aptMirror(sourcesText: string): string | undefined {
  const uris = [...sourcesText.matchAll(/^(?:URIs:\s*(\S+)|deb\s+(?:\[[^\]]*\]\s+)?(\S+))/gm)].map(
    (m) => m[1] ?? m[2]!,
  );
  return uris.find((u) => /\/debian\/?$/.test(u)) ?? uris[0];
}
