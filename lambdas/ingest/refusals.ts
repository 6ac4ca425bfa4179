/**
 * Evidence that a message is refused for good. A message the source refuses (POP3 -ERR on RETR)
 * or that runs past maxMessageBytes fails only itself; without a memory of it, it would count as
 * backlog in every run, and a mailbox's `Backlog` could never return to zero.
 *
 * The rule: a message refused in {@link PERMANENT_AFTER_REFUSALS} polls that tried it, with no
 * success between (a success ingests it, which ends the matter), is *permanently refused*. From
 * then on it is reported as skipped, not failed, so it leaves the backlog. It is still tried in
 * every run (a server that recovers gets it ingested) and it is never deleted because of this.
 *
 * The counts live in one small object per mailbox, `state/~refused/{mailbox}.json`: under
 * `state/` (the deployed poller may write and delete only there), in a folder whose name no
 * mailbox id can take (`~` is not allowed in one), so it never meets a mailbox's own state. It
 * is read and written only in a run that had a refusal, so idle polls pay nothing for it.
 */
import { describeError } from "../errors.ts";
import type { ObjectStore } from "../ports.ts";
import { isRecord } from "../util/is-record.ts";

/** Polls that must refuse a message before it is skipped: one flaky answer is not evidence. */
export const PERMANENT_AFTER_REFUSALS = 3;

export function refusalsKey(mailbox: string): string {
  return `state/~refused/${mailbox}.json`;
}

/** What a run learnt about the messages refused in it. */
export interface RefusalVerdict {
  /** Keys refused in at least {@link PERMANENT_AFTER_REFUSALS} polls, this one included. */
  readonly permanent: ReadonlySet<string>;
  /** Refusals so far, per key refused in this run. */
  readonly counts: ReadonlyMap<string, number>;
}

/**
 * Adds this run's refusals to the mailbox's record and says which are permanent. Entries for
 * keys no longer listed are dropped, so the record never outgrows the mailbox. Never throws: if
 * the record cannot be read or written, `warn` is told and nothing counts as permanent, so the
 * worst outcome is the old one (the message stays in the backlog).
 */
export async function countRefusals(
  store: ObjectStore,
  mailbox: string,
  refused: readonly string[],
  listed: ReadonlySet<string>,
  warn: (message: string) => void,
): Promise<RefusalVerdict> {
  const key = refusalsKey(mailbox);
  const none: RefusalVerdict = { permanent: new Set(), counts: new Map() };
  let previous: Record<string, number>;
  try {
    previous = parseCounts(await readSmall(store, key));
  } catch (err) {
    warn(`could not read ${key}: ${describeError(err)}`);
    return none;
  }
  // Null-prototype: keys are server-chosen UIDLs, and "__proto__" is a valid one.
  const next: Record<string, number> = Object.create(null);
  for (const [k, count] of Object.entries(previous)) if (listed.has(k)) next[k] = count;
  const counts = new Map<string, number>();
  const permanent = new Set<string>();
  for (const k of refused) {
    const count = (next[k] ?? 0) + 1;
    next[k] = count;
    counts.set(k, count);
    if (count >= PERMANENT_AFTER_REFUSALS) permanent.add(k);
  }
  try {
    await store.put(key, Buffer.from(JSON.stringify({ version: 1, refusals: next })), {
      contentType: "application/json",
    });
  } catch (err) {
    warn(`could not write ${key}: ${describeError(err)}`);
    return none;
  }
  return { permanent, counts };
}

/** The counts in a record; an absent or unreadable record counts nothing (it only delays). */
function parseCounts(text: string | null): Record<string, number> {
  if (text === null) return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return {};
  }
  const out: Record<string, number> = Object.create(null);
  if (!isRecord(json) || !isRecord(json.refusals)) return out;
  for (const [k, v] of Object.entries(json.refusals)) {
    if (typeof v === "number" && Number.isInteger(v) && v > 0) out[k] = v;
  }
  return out;
}

async function readSmall(store: ObjectStore, key: string): Promise<string | null> {
  const body = await store.get(key);
  if (body === null) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}
