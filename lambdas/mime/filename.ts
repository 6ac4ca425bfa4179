/**
 * Attachment filenames come from the sender, so they never reach a storage key as given. The
 * sanitised name keeps only `[A-Za-z0-9._-]`, so it cannot hold a path separator, a `..`
 * segment, a control character or NUL; the original goes to metadata untouched.
 */

/** Used when nothing safe is left of the name. */
export const FALLBACK_FILENAME = "attachment.bin";

/** Longest sanitised name, extension included. */
export const MAX_FILENAME_LENGTH = 100;

/** Longest extension kept when a long name is cut (".tar.gz" style names keep only ".gz"). */
const MAX_EXTENSION_LENGTH = 16;

/** Unicode compatibility decomposition splits accents into combining marks (U+0300–U+036F). */
const COMBINING_MARKS = /[\u0300-\u036f]/g;

/**
 * A storage-safe version of `name`: the last path segment (both `/` and `\` separate), accents
 * folded to ASCII, every other character outside `[A-Za-z0-9._-]` replaced by `_`, runs of dots
 * collapsed (no `..`), no leading dot (no hidden files), at most {@link MAX_FILENAME_LENGTH}
 * characters with the extension kept. Falls back to {@link FALLBACK_FILENAME}. Linear time.
 */
export function sanitizeFilename(name: string | null | undefined): string {
  if (typeof name !== "string") return FALLBACK_FILENAME;
  const segments = name.split(/[/\\]/);
  let base = "";
  for (let i = segments.length - 1; i >= 0 && base === ""; i--) base = (segments[i] ?? "").trim();
  const cleaned = base
    .normalize("NFKD")
    .replace(COMBINING_MARKS, "")
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/\.{2,}/g, ".")
    .replace(/^\.+/, "");
  const trimmed = trimTrailing(cleaned, "._");
  if (/^[_.-]*$/.test(trimmed)) return FALLBACK_FILENAME;
  const dot = trimmed.lastIndexOf(".");
  const ext = dot > 0 && trimmed.length - dot <= MAX_EXTENSION_LENGTH ? trimmed.slice(dot) : "";
  let stem = ext === "" ? trimmed : trimmed.slice(0, dot);
  if (stem.length + ext.length > MAX_FILENAME_LENGTH) {
    stem = trimTrailing(stem.slice(0, MAX_FILENAME_LENGTH - ext.length), "._-");
  }
  if (/^[_-]*$/.test(stem)) stem = "attachment";
  return `${stem}${ext}`;
}

/**
 * `value` without trailing characters from `chars`. A loop, not `/[._]+$/`: that regex retries
 * from every position of a long run and is quadratic on hostile names.
 */
function trimTrailing(value: string, chars: string): string {
  let end = value.length;
  while (end > 0 && chars.includes(value.charAt(end - 1))) end--;
  return value.slice(0, end);
}

/**
 * The store key of attachment `index` under a message's parts prefix (which ends in `/`): the
 * zero-padded index keeps keys unique and in document order, the sanitised name is for people.
 */
export function attachmentRef(
  prefix: string,
  index: number,
  filename: string | null | undefined,
): string {
  return `${prefix}attachments/${String(index).padStart(4, "0")}-${sanitizeFilename(filename)}`;
}
