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
 */
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { ErrorCode, MailIngestError } from "../errors.ts";
import type { ObjectStore, StateEntry, StateStore } from "../ports.ts";
import { KeyedSerializer } from "./mailbox-lock.ts";
import {
  applyOp,
  assertMailboxId,
  corrupt,
  decodeEntry,
  decodeOp,
  encodeEntry,
  encodeOp,
  type StateOp,
} from "./state-codec.ts";

const DELTA_SUFFIX = ".json";
/** Delta names: 15-digit epoch ms, 6-digit sequence, 8 random hex digits; sorts by time. */
const DELTA_NAME = /^\d{15}-\d{6}-[0-9a-f]{8}$/;
/** A delta that vanished mid-load means a concurrent compaction; reload from scratch this often. */
const LOAD_ATTEMPTS = 3;
/** Delta GETs in flight at once during load. */
const READ_CONCURRENCY = 8;

export interface ObjectStateStoreOptions {
  readonly store: ObjectStore;
  /** Key prefix for all state objects. @default "state/" */
  readonly prefix?: string;
  /** load() compacts when more than this many deltas are pending. @default 100 */
  readonly compactAfter?: number;
}

interface Snapshot {
  /** Name of the last delta folded in; deltas at or below it are already included. */
  readonly upTo: string | null;
  readonly entries: Map<string, StateEntry>;
}

export class ObjectStateStore implements StateStore {
  private readonly store: ObjectStore;
  private readonly prefix: string;
  private readonly compactAfter: number;
  private readonly serial = new KeyedSerializer();
  /** Highest delta name seen per mailbox; new names must sort after it even if the clock slips. */
  private readonly floors = new Map<string, string>();
  /** Last epoch ms used for a delta name, and the sequence within that ms. */
  private lastMs = 0;
  private seq = 0;

  constructor(options: ObjectStateStoreOptions) {
    this.store = options.store;
    this.prefix = options.prefix ?? "state/";
    this.compactAfter = options.compactAfter ?? 100;
  }

  async load(mailbox: string): Promise<Map<string, StateEntry>> {
    assertMailboxId(mailbox);
    return await this.serial.run(mailbox, async () => {
      for (let attempt = 1; attempt <= LOAD_ATTEMPTS; attempt += 1) {
        const state = await this.tryLoad(mailbox);
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
  private async tryLoad(mailbox: string): Promise<Map<string, StateEntry> | null> {
    const snapshot = await this.readSnapshot(mailbox);
    const names: string[] = [];
    for await (const key of this.store.list(this.deltaPrefix(mailbox))) {
      const name = key.slice(this.deltaPrefix(mailbox).length, -DELTA_SUFFIX.length);
      if (key.endsWith(DELTA_SUFFIX) && DELTA_NAME.test(name)) names.push(name);
    }
    names.sort();
    const upTo = snapshot.upTo;
    const folded = upTo === null ? [] : names.filter((n) => n <= upTo);
    const pending = upTo === null ? names : names.filter((n) => n > upTo);
    const ops = await this.readDeltas(mailbox, pending);
    if (ops === null) return null;
    const state = snapshot.entries;
    for (const op of ops) applyOp(state, op);
    const highest = pending.at(-1) ?? upTo;
    if (highest !== null) this.raiseFloor(mailbox, highest);
    if (pending.length > this.compactAfter) {
      await this.compact(mailbox, state, pending.at(-1) ?? "", [...folded, ...pending]);
    } else if (folded.length > 0) {
      await this.deleteDeltas(mailbox, folded);
    }
    return state;
  }

  private async compact(
    mailbox: string,
    state: ReadonlyMap<string, StateEntry>,
    upTo: string,
    deltas: readonly string[],
  ): Promise<void> {
    const body = JSON.stringify({
      version: 1,
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
      const name = this.nextName(mailbox);
      await this.store.put(this.deltaKey(mailbox, name), body, { contentType: "application/json" });
      this.raiseFloor(mailbox, name);
    });
  }

  private async readSnapshot(mailbox: string): Promise<Snapshot> {
    const key = this.snapshotKey(mailbox);
    const bytes = await readAll(await this.store.get(key));
    if (bytes === null) return { upTo: null, entries: new Map() };
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString("utf8"));
    } catch (err) {
      throw corrupt(key, "not JSON", err);
    }
    if (
      typeof value !== "object" ||
      value === null ||
      !("entries" in value) ||
      !("upTo" in value)
    ) {
      throw corrupt(key, "not a snapshot");
    }
    const { entries, upTo } = value;
    if (!Array.isArray(entries) || typeof upTo !== "string" || !DELTA_NAME.test(upTo)) {
      throw corrupt(key, "malformed snapshot");
    }
    const map = new Map<string, StateEntry>();
    for (const raw of entries) {
      const entry = decodeEntry(raw, key);
      map.set(entry.uidl, entry);
    }
    return { upTo, entries: map };
  }

  /** Reads and decodes deltas in order; null if any has vanished. */
  private async readDeltas(mailbox: string, names: readonly string[]): Promise<StateOp[] | null> {
    const ops: (StateOp | null)[] = new Array(names.length).fill(null);
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
        ops[item.index] = decodeOp(bytes.toString("utf8"), key);
      },
    );
    if (vanished) return null;
    return ops.filter((op): op is StateOp => op !== null);
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
