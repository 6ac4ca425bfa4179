/**
 * {@link StateStore} on an {@link ObjectStore} (S3 has no append). Each record()/forget() writes
 * one small delta object, `<prefix><mailbox>/delta/<time-sortable-unique>.json`, so a checkpoint
 * costs one PUT no matter how large the state is. load() reads `<prefix><mailbox>/snapshot.json`
 * and replays the deltas in name order. When more than `compactAfter` deltas have piled up, load()
 * folds them into a new snapshot that names the last delta it includes (`upTo`), and only then
 * deletes the folded deltas. A crash at any point is harmless: before the snapshot PUT (atomic per
 * the ObjectStore contract) nothing changed; after it, leftover deltas at or below `upTo` are
 * ignored on replay (re-applying an old "record" over a later "forget" would resurrect a UIDL) and
 * deleted by the next load.
 *
 * **Idle loads do not LIST.** `<prefix><mailbox>/dirty.json` exists whenever deltas may exist
 * past the snapshot: a writer PUTs it before its first delta after each of its own loads of the
 * mailbox, and only a load that folded every delta into a (version 2) snapshot and deleted them
 * deletes it, last. Once per load, not per delta, because the mailbox lock (one session per
 * mailbox anywhere) is held from a session's load to its last checkpoint: no other instance's
 * load can remove the marker in between. Without the lock (which no adapter set allows) another
 * instance's load could, and a delta written after it would be missed by idle loads until the
 * next marker: at worst its messages are fetched and queued again, as after a crash. So a load
 * that finds a version 2 snapshot and no marker (one GET, one HEAD, issued together) needs no
 * LIST: a mailbox that had nothing new since its last compaction costs two cheap reads instead of
 * a LIST ($0.005 per 1,000, like a PUT) plus a GET per delta. A crash anywhere leaves the marker
 * (or no delta), so the next load takes the full path and tidies up. Deltas without a marker can
 * only come from a writer older than this protocol: run one version against a bucket.
 *
 * An unreadable delta or snapshot never stops the mailbox: load() keeps what it can read, warns
 * naming the key and what may be fetched again (see state-codec.ts), copies each damaged object
 * to `<prefix><mailbox>/corrupt/` (nothing we cannot read is destroyed), and then compacts, so
 * the next load is clean.
 */
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { describeError, ErrorCode, MailIngestError } from "../errors.ts";
import type { ObjectStore, StateEntry, StateLoadOptions, StateStore } from "../ports.ts";
import { KeyedSerializer } from "./mailbox-lock.ts";
import {
  applyOp,
  assertMailboxId,
  type Damage,
  describeDamage,
  encodeEntry,
  encodeOp,
  type StateOp,
  salvageEntries,
  salvageOp,
} from "./state-codec.ts";

const DELTA_SUFFIX = ".json";
/** Delta names: 15-digit epoch ms, 6-digit sequence, 8 random hex digits; sorts by time. */
const DELTA_NAME = /^\d{15}-\d{6}-[0-9a-f]{8}$/;
/** A valid `upTo` below every delta name: a snapshot written when no delta was ever read. */
const NO_DELTA = "000000000000000-000000-00000000";
/** A delta that vanished mid-load means a concurrent compaction; reload from scratch this often. */
const LOAD_ATTEMPTS = 3;
/** Delta GETs in flight at once during load. */
const READ_CONCURRENCY = 8;

export interface ObjectStateStoreOptions {
  readonly store: ObjectStore;
  /** Key prefix for all state objects. @default "state/" */
  readonly prefix?: string;
  /**
   * load() compacts when more than this many deltas are pending. At the default, 0, a load folds
   * any delta it finds, so the loads after a busy poll are again the cheap idle path (see the
   * module comment); a larger value trades LISTs and delta GETs on later loads for fewer
   * snapshot rewrites. @default 0
   */
  readonly compactAfter?: number;
}

interface Snapshot {
  /** Name of the last delta folded in; deltas at or below it are already included. */
  readonly upTo: string | null;
  readonly entries: Map<string, StateEntry>;
  /**
   * Written under the clean-marker protocol (version 2) and fully readable: without a marker it
   * is the whole state.
   */
  readonly current?: boolean;
}

/** Snapshot format: 2 = written by a store that keeps the clean marker (see the module comment). */
const SNAPSHOT_VERSION = 2;

/** A state object load() could not fully read: warned about, then set aside and compacted away. */
interface Unreadable {
  readonly key: string;
  readonly bytes: Buffer;
  /** The warnings that describe it. */
  readonly warnings: readonly string[];
}

/** Stands for a dirty marker whose HEAD failed: the load takes the full (LIST) path. */
const MARKER_UNKNOWN = { size: -1 } as const;

export class ObjectStateStore implements StateStore {
  private readonly store: ObjectStore;
  private readonly prefix: string;
  private readonly compactAfter: number;
  private readonly serial = new KeyedSerializer();
  /** Mailboxes whose dirty marker this instance has PUT since its last load of them. */
  private readonly marked = new Set<string>();
  /** Highest delta name seen per mailbox; new names must sort after it even if the clock slips. */
  private readonly floors = new Map<string, string>();

  /** Last epoch ms used for a delta name, and the sequence within that ms. */
  private lastMs = 0;
  private seq = 0;

  constructor(options: ObjectStateStoreOptions) {
    this.store = options.store;
    this.prefix = options.prefix ?? "state/";
    this.compactAfter = options.compactAfter ?? 0;
  }

  async load(mailbox: string, options: StateLoadOptions = {}): Promise<Map<string, StateEntry>> {
    assertMailboxId(mailbox);
    const warn = options.onWarning ?? (() => undefined);
    const readOnly = options.readOnly ?? false;
    return await this.serial.run(mailbox, async () => {
      // A load may delete the marker: the next delta must PUT it again.
      if (!readOnly) this.marked.delete(mailbox);
      for (let attempt = 1; attempt <= LOAD_ATTEMPTS; attempt += 1) {
        const state = await this.tryLoad(mailbox, warn, readOnly);
        if (state !== null) return state;
      }
      throw new MailIngestError(
        ErrorCode.STATE_CORRUPT,
        `State deltas for ${mailbox} kept vanishing during load (a second writer?)`,
      );
    });
  }

  record(mailbox: string, entries: readonly StateEntry[]): Promise<void> {
    return this.writeDelta(mailbox, { op: "record", entries });
  }

  forget(mailbox: string, uidls: readonly string[]): Promise<void> {
    return this.writeDelta(mailbox, { op: "forget", uidls });
  }

  /** Returns null when a listed delta disappeared before it could be read. */
  private async tryLoad(
    mailbox: string,
    warn: (message: string) => void,
    readOnly: boolean,
  ): Promise<Map<string, StateEntry> | null> {
    const [{ snapshot, unreadable: badSnapshot }, dirty] = await Promise.all([
      this.readSnapshot(mailbox),
      // A HEAD that fails is taken as "deltas may exist", never as "clean": the full path then
      // lists them. S3 answers 403 rather than 404 for an absent key unless the caller may list
      // it, and a poller whose s3:ListBucket is limited by an s3:prefix condition may not.
      this.store.head(this.dirtyKey(mailbox)).catch(() => MARKER_UNKNOWN),
    ]);
    if (snapshot.current === true && dirty === null) {
      // The idle path: nothing was written since the last full compaction.
      if (snapshot.upTo !== null) this.raiseFloor(mailbox, snapshot.upTo);
      return snapshot.entries;
    }
    const names: string[] = [];
    for await (const key of this.store.list(this.deltaPrefix(mailbox))) {
      const name = key.slice(this.deltaPrefix(mailbox).length, -DELTA_SUFFIX.length);
      if (key.endsWith(DELTA_SUFFIX) && DELTA_NAME.test(name)) names.push(name);
    }
    names.sort();
    const upTo = snapshot.upTo;
    const folded = upTo === null ? [] : names.filter((n) => n <= upTo);
    const pending = upTo === null ? names : names.filter((n) => n > upTo);
    const deltas = await this.readDeltas(mailbox, pending);
    if (deltas === null) return null;
    const state = snapshot.entries;
    const unreadable = badSnapshot === null ? [] : [badSnapshot];
    for (const delta of deltas) {
      if (delta.op !== null) applyOp(state, delta.op);
      if (delta.unreadable !== null) unreadable.push(delta.unreadable);
    }
    // Warn only now, once this attempt is known to stand (a vanished delta means a retry).
    for (const object of unreadable) for (const message of object.warnings) warn(message);
    const highest = pending.at(-1) ?? upTo;
    if (highest !== null) this.raiseFloor(mailbox, highest);
    if (readOnly) return state;
    const all = [...folded, ...pending];
    if (unreadable.length > 0) {
      const clean = await this.setAsideAndCompact(
        mailbox,
        state,
        highest ?? NO_DELTA,
        all,
        unreadable,
        warn,
      );
      if (clean) await this.clearDirty(mailbox);
    } else if (pending.length > this.compactAfter) {
      await this.compact(mailbox, state, pending.at(-1) ?? NO_DELTA, all);
      await this.clearDirty(mailbox);
    } else if (pending.length === 0) {
      // Nothing pending: make the state clean, so later loads take the idle path. A snapshot
      // that is missing or older than the marker protocol is rewritten once (one PUT).
      if (snapshot.current === true) await this.deleteDeltas(mailbox, folded);
      else await this.compact(mailbox, state, upTo ?? NO_DELTA, folded);
      if (dirty !== null) await this.clearDirty(mailbox);
    } else if (folded.length > 0) {
      await this.deleteDeltas(mailbox, folded);
    }
    return state;
  }

  /**
   * Copies each unreadable object under `corrupt/`, then compacts: the new snapshot replaces a
   * damaged one and the damaged deltas are deleted with the rest, so the warnings are not
   * repeated. Nothing readable is dropped: the snapshot holds exactly the state load() returns.
   * A failure here is reported, not fatal: the state is loaded and the next load tries again.
   */
  private async setAsideAndCompact(
    mailbox: string,
    state: ReadonlyMap<string, StateEntry>,
    upTo: string,
    deltas: readonly string[],
    unreadable: readonly Unreadable[],
    warn: (message: string) => void,
  ): Promise<boolean> {
    const aside = `${this.prefix}${mailbox}/corrupt/`;
    const stamp = Date.now();
    try {
      await inBatches(unreadable, READ_CONCURRENCY, async (object) => {
        const name = object.key.slice(object.key.lastIndexOf("/") + 1);
        const key = object.key === this.snapshotKey(mailbox) ? `snapshot-${stamp}.json` : name;
        await this.store.put(`${aside}${key}`, object.bytes, { contentType: "application/json" });
      });
      await this.compact(mailbox, state, upTo, deltas);
    } catch (err) {
      warn(
        `state ${this.prefix}${mailbox}/: could not set ${unreadable.length} unreadable object(s) aside and compact (${describeError(err)}); they will be skipped again next time`,
      );
      return false;
    }
    warn(
      `state ${this.prefix}${mailbox}/: set ${unreadable.length} unreadable object(s) aside under ${aside} and folded the rest into a new snapshot`,
    );
    return true;
  }

  /** Deletes the dirty marker: only after a snapshot holds every delta and they are deleted. */
  private async clearDirty(mailbox: string): Promise<void> {
    await this.store.delete(this.dirtyKey(mailbox));
  }

  private async compact(
    mailbox: string,
    state: ReadonlyMap<string, StateEntry>,
    upTo: string,
    deltas: readonly string[],
  ): Promise<void> {
    const body = JSON.stringify({
      version: SNAPSHOT_VERSION,
      upTo,
      entries: [...state.values()].map(encodeEntry),
    });
    // Snapshot first, deletes after: see the module comment for why this order is crash-safe.
    await this.store.put(this.snapshotKey(mailbox), Buffer.from(body, "utf8"), {
      contentType: "application/json",
    });
    await this.deleteDeltas(mailbox, deltas);
  }

  private async deleteDeltas(mailbox: string, names: readonly string[]): Promise<void> {
    await inBatches(names, READ_CONCURRENCY, (name) =>
      this.store.delete(this.deltaKey(mailbox, name)),
    );
  }

  private async writeDelta(mailbox: string, op: StateOp): Promise<void> {
    assertMailboxId(mailbox);
    const empty = op.op === "record" ? op.entries.length === 0 : op.uidls.length === 0;
    if (empty) return;
    const body = Buffer.from(encodeOp(op), "utf8");
    await this.serial.run(mailbox, async () => {
      // The marker first, before the first delta since this instance's last load: a delta that
      // exists while the marker does not would be ignored by the idle path. One small PUT per
      // session, not per checkpoint (see the module comment for why that is enough).
      if (!this.marked.has(mailbox)) {
        await this.store.put(this.dirtyKey(mailbox), Buffer.from("{}", "utf8"), {
          contentType: "application/json",
        });
        this.marked.add(mailbox);
      }
      const name = this.nextName(mailbox);
      await this.store.put(this.deltaKey(mailbox, name), body, { contentType: "application/json" });
      this.raiseFloor(mailbox, name);
    });
  }

  /**
   * The snapshot, keeping whatever of it is readable. With an unreadable `upTo` every delta is
   * replayed: deltas it had folded in are normally deleted already, and a leftover one (from a
   * compaction cut short) can at worst bring back UIDLs forgotten since, which are gone from the
   * server and so forgotten again by the next poll.
   */
  private async readSnapshot(
    mailbox: string,
  ): Promise<{ snapshot: Snapshot; unreadable: Unreadable | null }> {
    const key = this.snapshotKey(mailbox);
    const bytes = await readAll(await this.store.get(key));
    const entries = new Map<string, StateEntry>();
    if (bytes === null) return { snapshot: { upTo: null, entries }, unreadable: null };
    const damaged = (damage: Damage, upTo: string | null = null) => ({
      snapshot: { upTo, entries },
      unreadable: { key, bytes, warnings: [describeDamage(key, damage)] },
    });
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString("utf8"));
    } catch {
      return damaged({ kind: "record", why: "not JSON", lost: null, total: null });
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return damaged({ kind: "record", why: "not a snapshot object", lost: null, total: null });
    }
    const raw = "upTo" in value ? value.upTo : undefined;
    const upTo = typeof raw === "string" && DELTA_NAME.test(raw) ? raw : null;
    const list = "entries" in value ? value.entries : undefined;
    if (!Array.isArray(list)) {
      return damaged(
        { kind: "record", why: "entries is not an array", lost: null, total: null },
        upTo,
      );
    }
    const salvaged = salvageEntries(list);
    for (const entry of salvaged.entries) entries.set(entry.uidl, entry);
    const warnings: string[] = [];
    if (salvaged.why !== null) {
      const { lost, why } = salvaged;
      warnings.push(describeDamage(key, { kind: "record", why, lost, total: list.length }));
    }
    if (upTo === null) {
      warnings.push(
        `state ${key}: upTo is unreadable, so every delta is replayed; a UIDL forgotten before the last compaction may count as known until the next poll sees it gone, and no message is fetched again`,
      );
    }
    const unreadable = warnings.length === 0 ? null : { key, bytes, warnings };
    const version = "version" in value ? value.version : undefined;
    const current = unreadable === null && version === SNAPSHOT_VERSION;
    return { snapshot: { upTo, entries, current }, unreadable };
  }

  /** Reads and decodes deltas in order, keeping what is readable; null if any has vanished. */
  private async readDeltas(
    mailbox: string,
    names: readonly string[],
  ): Promise<{ op: StateOp | null; unreadable: Unreadable | null }[] | null> {
    const deltas: { op: StateOp | null; unreadable: Unreadable | null }[] = names.map(() => ({
      op: null,
      unreadable: null,
    }));
    let vanished = false;
    await inBatches(
      names.map((name, index) => ({ name, index })),
      READ_CONCURRENCY,
      async (item) => {
        const key = this.deltaKey(mailbox, item.name);
        const bytes = await readAll(await this.store.get(key));
        if (bytes === null) {
          vanished = true;
          return;
        }
        const { op, damage } = salvageOp(bytes.toString("utf8"));
        deltas[item.index] = {
          op,
          unreadable:
            damage === null ? null : { key, bytes, warnings: [describeDamage(key, damage)] },
        };
      },
    );
    return vanished ? null : deltas;
  }

  /** A delta name that sorts after every name this instance has written or seen for `mailbox`. */
  private nextName(mailbox: string): string {
    let ms = Date.now();
    const floor = this.floors.get(mailbox);
    const floorMs = floor === undefined ? 0 : Number(floor.slice(0, 15));
    if (ms <= floorMs) ms = floorMs + 1;
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      this.seq += 1;
    } else {
      this.seq = 0;
    }
    this.lastMs = ms;
    const random = randomBytes(4).toString("hex");
    return `${String(ms).padStart(15, "0")}-${String(this.seq).padStart(6, "0")}-${random}`;
  }

  private raiseFloor(mailbox: string, name: string): void {
    const floor = this.floors.get(mailbox);
    if (floor === undefined || name > floor) this.floors.set(mailbox, name);
  }

  private snapshotKey(mailbox: string): string {
    return `${this.prefix}${mailbox}/snapshot.json`;
  }

  private dirtyKey(mailbox: string): string {
    return `${this.prefix}${mailbox}/dirty.json`;
  }

  private deltaPrefix(mailbox: string): string {
    return `${this.prefix}${mailbox}/delta/`;
  }

  private deltaKey(mailbox: string, name: string): string {
    return `${this.deltaPrefix(mailbox)}${name}${DELTA_SUFFIX}`;
  }
}

/** Collects a small state object's bytes (never used for message bodies). */
async function readAll(stream: Readable | null): Promise<Buffer | null> {
  if (stream === null) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

async function inBatches<T>(
  items: readonly T[],
  width: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < items.length; i += width) {
    await Promise.all(items.slice(i, i + width).map(fn));
  }
}
