// Text from hostile input (an image's names and config) made safe to print on a terminal.

/** Escapes control characters (C0, DEL, C1) so a hostile name cannot drive a terminal. */
export function printable(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
