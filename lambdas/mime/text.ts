/** Text helpers shared by the MIME parse and the reply extraction. */

/** At most `maxBytes` of `text` as UTF-8, cut on a character boundary (never a partial char). */
export function preview(text: string, maxBytes: number): string {
  const buf = new Uint8Array(maxBytes);
  // encodeInto only writes whole characters (surrogate pairs included), so the cut is clean.
  const { written } = new TextEncoder().encodeInto(text.slice(0, maxBytes), buf);
  return Buffer.from(buf.buffer, 0, written).toString("utf8");
}
