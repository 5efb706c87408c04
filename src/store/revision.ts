// The compare-and-swap guard every conditional write uses (If-Match, --if-revision): one
// check, one error text (docs/errors.md, docs/metadata.md).

import { JailyardError } from '../errors.ts';

/**
 * Throws JY_ERR_REVISION_CONFLICT unless `expected` is undefined (an unconditional write) or
 * the jail is at that revision. Callers run it inside the transaction of their first change,
 * so a conflict changes nothing.
 */
export function checkRevision(jail: { name: string; revision: number }, expected: number | undefined): void {
  if (expected !== undefined && expected !== jail.revision) {
    throw new JailyardError(
      'JY_ERR_REVISION_CONFLICT',
      `revision conflict: expected revision ${expected}, jail is at revision ${jail.revision}`,
      { jail: jail.name },
    );
  }
}
