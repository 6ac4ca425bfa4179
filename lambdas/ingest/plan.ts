/**
 * Pure bookkeeping: given the source's listing and what the state store remembers, decide what
 * this session fetches, deletes and forgets. No I/O here, so every rule is unit-testable.
 */
import type { DeletePolicy } from "../config/index.ts";
import type { SourceListing, SourceMessage, StateEntry } from "../ports.ts";

export interface PlanLimits {
  readonly maxMessagesPerRun?: number;
  readonly maxBytesPerRun?: number;
  readonly maxMessageBytes: number;
}

export interface SessionPlan {
  readonly listed: readonly SourceMessage[];
  /** Not yet ingested, in server order, within this run's caps. */
  readonly fetch: readonly SourceMessage[];
  /** Not yet ingested but left for a later run by the message or byte cap. */
  readonly deferred: number;
  /** Over maxMessageBytes: reported, never fetched, never deleted. */
  readonly tooLarge: readonly SourceMessage[];
  /** Already ingested and due for deletion under the delete policy. */
  readonly deleteKnown: readonly SourceMessage[];
  /** State keys no longer on the server. */
  readonly vanished: readonly string[];
  /** Keys with more than one message on the server. */
  readonly duplicateUidls: readonly string[];
  /** Most listed UIDLs unknown while the count is stable: the server likely renumbered. */
  readonly uidlReset: boolean;
  /** Count of listed messages not in state (before caps). */
  readonly newCount: number;
}

const DAY_MS = 86_400_000;

/** Thresholds for UIDL-reset detection; below MIN_STATE a mailbox is too small to judge. */
const RESET_MIN_STATE = 10;
const RESET_MAX_KNOWN_FRACTION = 0.2;
const RESET_MIN_COUNT_RATIO = 0.5;

/**
 * `listing` is what the source said beyond its messages: for an incremental listing, which known
 * keys are gone and whether its keys were renumbered (see {@link SourceListing}).
 */
export function planSession(
  listed: readonly SourceMessage[],
  state: ReadonlyMap<string, StateEntry>,
  policy: DeletePolicy,
  limits: PlanLimits,
  now: Date,
  listing: Omit<SourceListing, "messages"> = {},
): SessionPlan {
  const onServer = new Set(listed.map((m) => m.key));
  const incremental = listing.vanished !== undefined;
  const vanished = incremental
    ? [...(listing.vanished ?? [])]
    : [...state.keys()].filter((key) => !onServer.has(key));
  const duplicateUidls = [...new Set(listed.filter((m) => m.ambiguous).map((m) => m.uidl))];

  const fresh: SourceMessage[] = [];
  const deleteKnown: SourceMessage[] = [];
  for (const m of listed) {
    const entry = state.get(m.key);
    if (!entry) {
      fresh.push(m);
    } else if (!m.ambiguous && dueForDeletion(entry, policy, now)) {
      // Messages sharing a UIDL are never deleted by us: their identity is ambiguous, and a
      // wrong DELE loses mail while a kept message costs only space.
      deleteKnown.push(m);
    }
  }

  const known = listed.length - fresh.length;
  // An incremental listing is mostly new messages by design, so only the source can tell.
  const uidlReset =
    listing.reset === true ||
    (!incremental &&
      state.size >= RESET_MIN_STATE &&
      listed.length >= state.size * RESET_MIN_COUNT_RATIO &&
      known / listed.length < RESET_MAX_KNOWN_FRACTION);

  const tooLarge = fresh.filter((m) => m.size > limits.maxMessageBytes);
  const fetch: SourceMessage[] = [];
  let bytes = 0;
  let deferred = 0;
  for (const m of fresh) {
    if (m.size > limits.maxMessageBytes) continue;
    const overCount =
      limits.maxMessagesPerRun !== undefined && fetch.length >= limits.maxMessagesPerRun;
    // The byte cap never blocks the first message, or one big message would stall forever.
    const overBytes =
      limits.maxBytesPerRun !== undefined &&
      fetch.length > 0 &&
      bytes + m.size > limits.maxBytesPerRun;
    if (overCount || overBytes) {
      deferred++;
      continue;
    }
    fetch.push(m);
    bytes += m.size;
  }

  return {
    listed,
    fetch,
    deferred,
    tooLarge,
    deleteKnown,
    vanished,
    duplicateUidls,
    uidlReset,
    newCount: fresh.length,
  };
}

/** Whether a message ingested earlier is due for DELE under the policy. */
export function dueForDeletion(entry: StateEntry, policy: DeletePolicy, now: Date): boolean {
  if (policy === "never") return false;
  if (policy === "after-ingest") return true;
  const ingested = Date.parse(entry.ingestedAt);
  return Number.isFinite(ingested) && now.getTime() - ingested >= policy.afterDays * DAY_MS;
}
