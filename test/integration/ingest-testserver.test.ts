/**
 * The mailbox session end to end against the project's own POP3 server (real TCP) and the fs
 * adapters. Dovecot runs the same scenarios in ingest-dovecot.test.ts; this file covers the
 * faults only a scripted server can produce.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pop3Source } from "../../lambdas/adapters/pop3-source.ts";
import { sampleMessages } from "../../lambdas/demo/messages.ts";
import {
  type Pop3TestServer,
  type Pop3TestServerOptions,
  startPop3TestServer,
  type TestMessage,
} from "../../lambdas/demo/pop3-server.ts";
import { ErrorCode, MailIngestError } from "../../lambdas/errors.ts";
import { FetchGate } from "../../lambdas/ingest/fetch-gate.ts";
import { Pop3Client, type Pop3Options } from "../../lambdas/pop3/index.ts";
import type { MessageQueue, ObjectStore } from "../../lambdas/ports.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type FsWorld, fsWorld, sha256, tempFiles, wrapStore } from "../helpers/pipeline.ts";
import { schemaErrors, validateQueueBody } from "../unit/mime/validator.ts";

const USER = "user@example.test";
const PASSWORD = "pw";

let server: Pop3TestServer | undefined;
let world: FsWorld | undefined;

afterEach(async () => {
  await server?.close();
  await world?.cleanup();
  server = undefined;
  world = undefined;
});

/** Wraps a store to record the keys put and deleted through it. */
function watchWrites(inner: ObjectStore) {
  const put: string[] = [];
  const deleted: string[] = [];
  const store = wrapStore(inner, {
    put: (key, body, options) => {
      put.push(key);
      return inner.put(key, body, options);
    },
    delete: (key) => {
      deleted.push(key);
      return inner.delete(key);
    },
  });
  return { store, put, deleted };
}

/**
 * A migrated mailbox (a UIDL reset): a new server holding the same messages under new UIDLs,
 * then `added`.
 */
function migratedServer(initial: TestMessage[], added: TestMessage[] = []) {
  return startPop3TestServer({
    users: {
      [USER]: {
        password: PASSWORD,
        messages: [...initial.map((m) => ({ uidl: `migrated-${m.uidl}`, data: m.data })), ...added],
      },
    },
  });
}

function messages(count: number, from = 0): TestMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    uidl: `uid-${from + i}`,
    data: generateMessage(from + i),
  }));
}

async function setup(
  initial: TestMessage[],
  mailbox: Record<string, unknown> = {},
  serverOptions: Partial<Pop3TestServerOptions> = {},
) {
  server = await startPop3TestServer({
    ...serverOptions,
    users: { [USER]: { password: PASSWORD, messages: initial } },
  });
  world = await fsWorld(
    {
      host: server.host,
      port: server.port,
      tls: "none",
      allowInsecureAuth: true,
      username: USER,
      ...mailbox,
    },
    PASSWORD,
  );
  return { server, world };
}

describe("mailbox session against the test server", () => {
  it("stores every message byte-exact, queues schema v2 metadata once each, and a second poll adds nothing", async () => {
    const initial = messages(12);
    const { world } = await setup(initial);
    const first = await world.poll();
    expect(first).toMatchObject({ listed: 12, new: 12, ingested: 12, failed: 0, deleted: 0 });
    expect(first.error).toBeUndefined();

    const stored = [...(await world.raw()).values()].sort();
    expect(stored).toEqual(initial.map((m) => sha256(m.data)).sort());
    const queued = await world.queue();
    expect(queued).toHaveLength(12);
    for (const q of queued) {
      expect(q).toMatchObject({ schemaVersion: 2, mailbox: "box" });
      const raw = await readFile(new URL(String((q.raw as { uri: string }).uri)));
      expect(sha256(raw)).toBe(q.sha256);
      expect(validateQueueBody(q), schemaErrors()).toBe(true);
    }
    // `source` carries the server's own UIDL for each message (schema v2 replaced `uidl`).
    const uidlOf = new Map(initial.map((m) => [sha256(m.data), m.uidl]));
    for (const q of queued) {
      expect(q.source).toEqual({ protocol: "pop3", uidl: uidlOf.get(String(q.sha256)) });
    }

    const second = await world.poll();
    expect(second).toMatchObject({ listed: 12, new: 0, ingested: 0 });
    expect(await world.queue()).toHaveLength(12);
  });

  it("queues schema v2 content: small bodies inline with no part object, a large one stored, reply and delivery facts", async () => {
    const reply = Buffer.from(
      [
        "Delivered-To: support@example.com",
        "X-Spam-Status: No, score=-1.2 required=5.0",
        "From: Ann <ann@example.com>",
        "To: help@example.com",
        "Subject: Re: printer",
        "Message-ID: <reply@example.com>",
        'Content-Type: text/plain; charset="iso-8859-1"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Gr=FC=DFe, it works now.",
        "",
        "On Tue, 1 Jul 2003, Support <support@example.com> wrote:",
        "> Please restart it.",
        "",
      ].join("\r\n"),
    );
    const bigText = `${"long line of text ".repeat(5000)}`;
    const big = Buffer.from(
      [
        "From: Bob <bob@example.com>",
        "Subject: big",
        "Message-ID: <big@example.com>",
        "Content-Type: text/plain; charset=utf-8",
        "",
        bigText,
        "",
      ].join("\r\n"),
    );
    const { world } = await setup([
      { uidl: "reply", data: reply },
      { uidl: "big", data: big },
    ]);
    expect(await world.poll()).toMatchObject({ ingested: 2, failed: 0 });
    const queued = await world.queue();
    const byUidl = new Map(queued.map((q) => [(q.source as { uidl: string }).uidl, q]));
    const data = path.join(world.dir, "mail-ingest-data");
    const small = byUidl.get("reply");
    expect(validateQueueBody(small), schemaErrors()).toBe(true);
    expect(small).toMatchObject({
      text: {
        size: Buffer.byteLength(
          "Grüße, it works now.\n\nOn Tue, 1 Jul 2003, Support <support@example.com> wrote:\n> Please restart it.\n",
        ),
        charset: "iso-8859-1",
        content: expect.stringContaining("Grüße, it works now."),
      },
      textReply: "Grüße, it works now.",
      headers: { deliveredTo: ["support@example.com"] },
      spam: { flag: false, score: -1.2 },
    });
    // Inline body: nothing at all under parts/ for this message (no attachments either).
    expect(
      await readdir(path.join(data, "parts", "box", String(small?.id))).catch(() => []),
    ).toEqual([]);
    // The meta object is the same full message the queue carries.
    const meta = JSON.parse(
      await readFile(path.join(data, "meta", "box", `${small?.id}.json`), "utf8"),
    );
    expect(meta).toEqual(small);

    const large = byUidl.get("big");
    expect(validateQueueBody(large), schemaErrors()).toBe(true);
    const text = large?.text as { size: number; ref: string; content?: string };
    expect(text.content).toBeUndefined();
    expect(text.size).toBeGreaterThan(64 * 1024);
    const stored = await readFile(path.join(data, text.ref), "utf8");
    expect(Buffer.byteLength(stored)).toBe(text.size);
    expect(stored.startsWith(bigText)).toBe(true);
  });

  it("picks up new mail on the next poll", async () => {
    const { server, world } = await setup(messages(3));
    await world.poll();
    server.addMessages(USER, messages(2, 3));
    const next = await world.poll();
    expect(next).toMatchObject({ listed: 5, new: 2, ingested: 2 });
    expect((await world.raw()).size).toBe(5);
  });

  it("delete after-ingest empties the maildrop, and only after everything is queued", async () => {
    const { server, world } = await setup(messages(25), { delete: "after-ingest" });
    const report = await world.poll();
    expect(report).toMatchObject({ ingested: 25, deleted: 25 });
    expect(server.messages(USER)).toHaveLength(0);
    expect(await world.queue()).toHaveLength(25);
  });

  it("never deletes a message whose queue send failed, and a rerun completes it", async () => {
    const { server, world } = await setup(messages(5), { delete: "after-ingest" });
    const failing: MessageQueue = {
      maxBodyBytes: world.deps.queue.maxBodyBytes,
      send: async () => {
        throw new MailIngestError(ErrorCode.QUEUE_FAILED, "queue down");
      },
    };
    const broken = await world.poll({ deps: { queue: failing } });
    expect(broken.errorCode).toBe(ErrorCode.QUEUE_FAILED);
    expect(broken.deleted).toBe(0);
    expect(server.messages(USER)).toHaveLength(5);

    const rerun = await world.poll();
    expect(rerun).toMatchObject({ ingested: 5, deleted: 5 });
    expect(server.messages(USER)).toHaveLength(0);
    // The raw objects written by the failed run were kept (create-only), not stored twice.
    expect((await world.raw()).size).toBe(5);
  });

  it("commits DELEs of earlier messages when storage fails part way, and keeps the failed one", async () => {
    const { server, world } = await setup(messages(15), { delete: "after-ingest" });
    let puts = 0;
    const store = world.deps.store;
    const flaky: ObjectStore = Object.assign(Object.create(store) as ObjectStore, {
      put: (
        key: string,
        body: Parameters<ObjectStore["put"]>[1],
        options?: Parameters<ObjectStore["put"]>[2],
      ) => {
        // The 12th raw message fails; the first 10 were flushed as one queue batch before it.
        if (key.startsWith("raw/") && ++puts === 12) return Promise.reject(new Error("disk full"));
        return store.put(key, body, options);
      },
    });
    const report = await world.poll({ deps: { store: flaky } });
    expect(report.errorCode).toBe(ErrorCode.STORE_FAILED);
    expect(report.error).toMatch(/mailbox box: .*disk full/);
    // Messages committed before the failure (at least the first queue batch of 10, plus any
    // whose commit was already in flight) are queued and deleted; the failed one stays.
    expect(report.deleted).toBeGreaterThanOrEqual(10);
    expect(await world.queue()).toHaveLength(report.deleted);
    const left = server.messages(USER).map((m) => m.uidl);
    expect(left).toHaveLength(15 - report.deleted);
    expect(left).toContain("uid-11");
  });

  it("skips messages over maxMessageBytes, reports them and never deletes them", async () => {
    const big = {
      uidl: "big",
      data: generateMessage(99, { withAttachment: true, attachmentBytes: 50_000 }),
    };
    const { server, world } = await setup([...messages(2), big], {
      delete: "after-ingest",
      maxMessageBytes: 20_000,
    });
    const report = await world.poll();
    expect(report).toMatchObject({ ingested: 2, skipped: 1, deleted: 2 });
    expect(report.warnings.join("\n")).toMatch(/exceeds maxMessageBytes/);
    expect(server.messages(USER).map((m) => m.uidl)).toEqual(["big"]);
  });

  it("deletes under afterDays only on a later run, once the message is old enough", async () => {
    const { server, world } = await setup(messages(3), { delete: { afterDays: 2 } });
    const day0 = new Date("2026-11-01T00:00:00Z");
    expect((await world.poll({ deps: { now: () => day0 } })).deleted).toBe(0);
    const day1 = new Date("2026-11-02T00:00:00Z");
    expect((await world.poll({ deps: { now: () => day1 } })).deleted).toBe(0);
    const day3 = new Date("2026-11-03T00:00:01Z");
    expect((await world.poll({ deps: { now: () => day3 } })).deleted).toBe(3);
    expect(server.messages(USER)).toHaveLength(0);
  });

  it("starts no RETR past the deadline, QUITs cleanly and reports what is left", async () => {
    const { server, world } = await setup(messages(4), { delete: "after-ingest" });
    const report = await world.poll({ deadline: Date.now() - 1 });
    expect(report).toMatchObject({ ingested: 0, remaining: 4, deleted: 0 });
    expect(report.error).toBeUndefined();
    expect(server.messages(USER)).toHaveLength(4);
  });

  // Regression: the deadline was checked only before a RETR started, so a large message on a slow
  // server could run past the Lambda timeout, and restart from zero on every run.
  it("abandons a download still running at the deadline, QUITs in time and deletes only what was committed", async () => {
    const big = {
      uidl: "big",
      data: generateMessage(900, { withAttachment: true, attachmentBytes: 1_500_000 }),
    };
    const initial = [...messages(3), big, ...messages(2, 3)];
    const { server, world } = await setup(
      initial,
      { delete: "after-ingest" },
      { faults: { retrBytesPerSecond: 1_000_000 } },
    );
    const deadline = Date.now() + 1_000;
    const report = await world.poll({ deadline });
    // The rest of the abandoned body (~1 s at this pace) is read off the wire before QUIT is
    // answered, well inside the grace that keeps a Lambda clear of its timeout.
    expect(Date.now() - deadline).toBeLessThan(10_000);
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ ingested: 3, deleted: 3, remaining: 3 });
    expect(report.stalled).toHaveLength(1);
    expect(server.messages(USER).map((m) => m.uidl)).toEqual(["big", "uid-3", "uid-4"]);
    expect((await world.raw()).size).toBe(3);
    expect(await tempFiles(world.dir)).toEqual([]);

    // With time to spare the next run takes it from the start, byte-exact.
    const next = await world.poll();
    expect(next).toMatchObject({ ingested: 3, deleted: 3 });
    expect([...(await world.raw()).values()]).toContain(sha256(big.data));
  });

  it("does not start a message the measured throughput says cannot finish by the deadline, and fetches smaller ones after it", async () => {
    const mid = Array.from({ length: 4 }, (_, i) => ({
      uidl: `mid-${i}`,
      data: generateMessage(700 + i, { withAttachment: true, attachmentBytes: 75_000 }),
    }));
    // Larger than the 4 MiB look-ahead, so its RETR is decided only once throughput is known.
    const big = {
      uidl: "big",
      data: generateMessage(901, { withAttachment: true, attachmentBytes: 4_000_000 }),
    };
    const { server, world } = await setup(
      [...mid, big, ...messages(2, 10)],
      {},
      { faults: { retrBytesPerSecond: 2_000_000 } },
    );
    const report = await world.poll({ deadline: Date.now() + 1_500 });
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ ingested: 6, remaining: 1 });
    expect(report.stalled).toHaveLength(1);
    expect([...(await world.raw()).values()]).not.toContain(sha256(big.data));
    expect(server.messages(USER)).toHaveLength(7);
  });

  it.each([true, false])(
    "stopping mid-run drains RETRs already sent ahead, QUITs cleanly and commits DELEs (PIPELINING %s)",
    async (pipelining) => {
      const total = 60;
      const initial = messages(total);
      const { server, world } = await setup(initial, { delete: "after-ingest" }, { pipelining });
      // Shut down as soon as the first queue batch is sent: by then later RETRs are in flight.
      const stop = new AbortController();
      const queue: MessageQueue = {
        maxBodyBytes: world.deps.queue.maxBodyBytes,
        send: async (entries) => {
          await world.deps.queue.send(entries);
          stop.abort();
        },
      };
      const first = await world.poll({ signal: stop.signal, deps: { queue } });
      expect(first.error).toBeUndefined();
      expect(first.ingested).toBeGreaterThanOrEqual(10);
      expect(first.ingested).toBeLessThan(total);
      expect(first.deleted).toBe(first.ingested);
      expect(first.ingested + first.remaining).toBe(total);
      expect(server.messages(USER)).toHaveLength(total - first.ingested);

      const rest = await world.poll();
      expect(rest).toMatchObject({ ingested: total - first.ingested, failed: 0 });
      expect(server.messages(USER)).toHaveLength(0);
      expect([...(await world.raw()).values()].sort()).toEqual(
        initial.map((m) => sha256(m.data)).sort(),
      );
    },
  );

  it("caps a run by maxMessagesPerRun and continues on the next run", async () => {
    const { world } = await setup(messages(7), { maxMessagesPerRun: 5 });
    expect(await world.poll()).toMatchObject({ ingested: 5, remaining: 2 });
    expect(await world.poll()).toMatchObject({ ingested: 2, remaining: 0 });
  });

  it("prunes UIDLs from state once they vanish from the server", async () => {
    const { server, world } = await setup(messages(3));
    await world.poll();
    // Another client deletes everything; state must not grow forever.
    const session = await world.poll({ mailbox: { delete: "after-ingest" } });
    expect(session.deleted).toBe(3);
    expect(server.messages(USER)).toHaveLength(0);
    await world.poll();
    expect((await world.deps.state.load("box")).size).toBe(0);
  });

  it("stores a message the parser cannot handle raw, and queues it flagged, without blocking the rest", async () => {
    const broken = Buffer.from(
      'Content-Type: multipart/mixed; boundary="b"\r\nSubject: broken\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%not base64%%%\r\n',
    );
    const { world } = await setup([{ uidl: "broken", data: broken }, ...messages(2)]);
    const report = await world.poll();
    expect(report).toMatchObject({ ingested: 3, failed: 0 });
    expect([...(await world.raw()).values()]).toContain(sha256(broken));
  });

  it("fails the mailbox on a connection cut mid-RETR, deleting and recording nothing", async () => {
    const { server, world } = await setup(
      messages(3),
      { delete: "after-ingest" },
      {
        faults: { cutRetrAfterBytes: 100 },
      },
    );
    const report = await world.poll();
    expect(report.errorCode).toBe(ErrorCode.CONNECTION_CLOSED);
    expect(report.deleted).toBe(0);
    expect(server.messages(USER)).toHaveLength(3);
    expect((await world.raw()).size).toBe(0);
    expect((await world.deps.state.load("box")).size).toBe(0);
  });

  it("ingests mail whose LIST size is off, since a wrong size is not a truncation", async () => {
    const initial = messages(3);
    const { world } = await setup(initial, {}, { faults: { reportWrongSize: true } });
    const report = await world.poll();
    expect(report).toMatchObject({ ingested: 3, failed: 0 });
    expect([...(await world.raw()).values()].sort()).toEqual(
      initial.map((m) => sha256(m.data)).sort(),
    );
  });

  it("abandons a body that runs past maxMessageBytes although LIST said it was small, and goes on", async () => {
    const runaway = {
      uidl: "runaway",
      data: generateMessage(1, { withAttachment: true, attachmentBytes: 200_000 }),
    };
    const { server, world } = await setup([runaway, ...messages(2, 10)], {
      delete: "after-ingest",
      maxMessageBytes: 20_000,
    });
    // A server whose LIST under-reports sizes: the plan lets the message through.
    const connect = async (options: Pop3Options) => {
      const client = await Pop3Client.connect(options);
      const list = client.list.bind(client);
      client.list = (async () =>
        (await list()).map((e) => ({ ...e, size: Math.min(e.size, 1000) }))) as typeof client.list;
      return client;
    };
    const report = await world.poll({ deps: { openSource: pop3Source(connect) } });
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ ingested: 2, failed: 1, deleted: 2 });
    expect(report.warnings.join("\n")).toMatch(/more than maxMessageBytes/);
    expect(server.messages(USER).map((m) => m.uidl)).toEqual(["runaway"]);
    expect((await world.raw()).size).toBe(2);
  });

  it("loads the state while the source connects and logs in (issue 14)", async () => {
    const { world } = await setup(messages(3));
    expect((await world.poll()).ingested).toBe(3);
    server?.addMessages(USER, messages(1, 3));
    const events: string[] = [];
    const state = world.deps.state;
    const watched = Object.create(state) as typeof state;
    watched.load = async (mailbox, options) => {
      events.push("load started");
      return state.load(mailbox, options);
    };
    const connect = async (options: Pop3Options) => {
      events.push("connect started");
      const client = await Pop3Client.connect(options);
      events.push("connected");
      return client;
    };
    const report = await world.poll({
      deps: { state: watched, openSource: pop3Source(connect) },
    });
    expect(report).toMatchObject({ listed: 4, new: 1, ingested: 1 });
    expect(events.indexOf("load started")).toBeLessThan(events.indexOf("connected"));
  });

  it("reports a failed connection once the state load it overlapped has settled", async () => {
    const { world } = await setup(messages(1));
    let releaseLoad!: () => void;
    const gate = new Promise<void>((resolve) => {
      releaseLoad = resolve;
    });
    let loadSettled = false;
    const state = world.deps.state;
    const watched = Object.create(state) as typeof state;
    watched.load = async (mailbox, options) => {
      await gate;
      const loaded = await state.load(mailbox, options);
      loadSettled = true;
      return loaded;
    };
    const refused = async (): Promise<never> => {
      throw new MailIngestError(ErrorCode.CONNECT_FAILED, "connection refused");
    };
    let done = false;
    const polled = world
      .poll({ deps: { state: watched, openSource: pop3Source(refused) } })
      .finally(() => {
        done = true;
      });
    // The connection has failed long before: the session still waits for the load (which may be
    // rewriting the state log) before it ends and gives up the mailbox lock.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(done).toBe(false);
    releaseLoad();
    const report = await polled;
    expect(loadSettled).toBe(true);
    expect(report.errorCode).toBe(ErrorCode.CONNECT_FAILED);
  });

  it("reports [IN-USE] as a typed failure without touching state", async () => {
    const { world } = await setup(messages(2), {}, { faults: { inUse: true } });
    const report = await world.poll();
    expect(report.errorCode).toBe(ErrorCode.IN_USE);
    expect((await world.deps.state.load("box")).size).toBe(0);
  });

  it("ingests every copy of a duplicated UIDL once and deletes none of them", async () => {
    const dupes = [
      { uidl: "same", data: generateMessage(1) },
      { uidl: "same", data: generateMessage(2) },
      { uidl: "other", data: generateMessage(3) },
    ];
    const { server, world } = await setup(dupes, { delete: "after-ingest" });
    const report = await world.poll();
    expect(report).toMatchObject({ ingested: 3, deleted: 1 });
    expect(report.warnings.join("\n")).toMatch(/UIDL/);
    expect([...(await world.raw()).values()].sort()).toEqual(
      dupes.map((m) => sha256(m.data)).sort(),
    );
    expect(server.messages(USER).map((m) => m.uidl)).toEqual(["same", "same"]);
    expect(await world.poll()).toMatchObject({ ingested: 0, deleted: 0 });
  });

  it("after a UIDL reset, records identical messages by sha256 instead of re-queueing them, and stores a Message-ID look-alike", async () => {
    const initial = messages(12);
    const { world } = await setup(initial);
    await world.poll();
    // Same Message-ID and size as an ingested message, one body byte different: a Message-ID +
    // size match once made this look like a copy, so it was never stored (and, in delete mode,
    // deleted from the server).
    const lookAlike = Buffer.from(initial[3]?.data as Uint8Array);
    lookAlike[lookAlike.lastIndexOf("e")] = "E".charCodeAt(0);
    // Migration: a new server holds the same messages under new UIDLs, plus two new messages.
    const migrated = await migratedServer(initial, [
      { uidl: "fresh", data: generateMessage(500) },
      { uidl: "look-alike", data: lookAlike },
    ]);
    try {
      const writes = watchWrites(world.deps.store);
      const report = await world.poll({
        mailbox: { port: migrated.port },
        deps: { store: writes.store },
      });
      expect(report.warnings.join("\n")).toMatch(/UIDL reset/);
      expect(report).toMatchObject({ ingested: 2, skipped: 12 });
      // The deployed poller may delete only under state/ (versioned bucket): copies are told
      // apart by hash before anything is stored, so nothing is written for them, nor removed.
      expect(writes.deleted).toEqual([]);
      expect(writes.put.filter((k) => k.startsWith("raw/"))).toHaveLength(2);
      expect(await world.queue()).toHaveLength(14);
      expect((await world.queue()).map((q) => q.sha256)).toContain(sha256(lookAlike));
      expect((await world.raw()).size).toBe(14);
      expect(await world.poll({ mailbox: { port: migrated.port } })).toMatchObject({
        new: 0,
        ingested: 0,
      });
    } finally {
      await migrated.close();
    }
  });

  it("after a UIDL reset, messages the deadline left unhashed count as remaining and wait for the next run", async () => {
    const initial = messages(10);
    const { world } = await setup(initial);
    await world.poll();
    const migrated = await migratedServer(initial);
    try {
      const late = await world.poll({ mailbox: { port: migrated.port }, deadline: Date.now() });
      expect(late).toMatchObject({ ingested: 0, skipped: 0, remaining: 10 });
      expect(late.error).toBeUndefined();
      const next = await world.poll({ mailbox: { port: migrated.port } });
      expect(next).toMatchObject({ ingested: 0, skipped: 10, remaining: 0 });
      expect(await world.queue()).toHaveLength(10);
    } finally {
      await migrated.close();
    }
  });

  it("a UIDL reset spread over several capped runs queues no copy: vanished entries are kept until every message was checked", async () => {
    const initial = messages(10);
    const { world } = await setup(initial);
    await world.poll();
    const migrated = await migratedServer(initial);
    try {
      const capped = { port: migrated.port, maxMessagesPerRun: 4 };
      expect(await world.poll({ mailbox: capped })).toMatchObject({ skipped: 4, remaining: 6 });
      // By now 4 of 10 listed UIDLs are known: the listing alone no longer looks like a reset.
      expect(await world.poll({ mailbox: capped })).toMatchObject({ skipped: 4, remaining: 2 });
      expect(await world.poll({ mailbox: capped })).toMatchObject({ skipped: 2, remaining: 0 });
      expect(await world.poll({ mailbox: capped })).toMatchObject({ new: 0, ingested: 0 });
      expect(await world.queue()).toHaveLength(10);
      expect((await world.raw()).size).toBe(10);
    } finally {
      await migrated.close();
    }
  });

  it("after a UIDL reset of mail without Message-IDs, dedupes by sha256 and keeps no second copy", async () => {
    const initial = messages(10).map((m) => ({
      uidl: m.uidl,
      data: Buffer.from(
        Buffer.from(m.data)
          .toString("latin1")
          .replace(/^Message-ID:.*\r\n/m, ""),
        "latin1",
      ),
    }));
    const { world } = await setup(initial);
    await world.poll();
    const migrated = await migratedServer(initial);
    try {
      const report = await world.poll({ mailbox: { port: migrated.port } });
      expect(report).toMatchObject({ ingested: 0, skipped: 10 });
      expect((await world.raw()).size).toBe(10);
      expect(await world.queue()).toHaveLength(10);
    } finally {
      await migrated.close();
    }
  });

  it("reports a message the server refuses in 3 polls in a row as skipped, not failed, and never deletes it", async () => {
    const initial = messages(3);
    const { server, world } = await setup(
      initial,
      { delete: "after-ingest" },
      { faults: { refuseRetrUidls: ["uid-1"] } },
    );
    const first = await world.poll();
    expect(first).toMatchObject({ ingested: 2, failed: 1, skipped: 0, deleted: 2 });
    expect(await world.poll()).toMatchObject({ ingested: 0, failed: 1, skipped: 0 });
    const third = await world.poll();
    // The third refusal is the evidence: it leaves the backlog (remaining + failed) as a skip.
    expect(third).toMatchObject({ ingested: 0, failed: 0, skipped: 1, remaining: 0 });
    expect(third.warnings.join("\n")).toMatch(/refused in 3 polls in a row: reported as skipped/);
    expect(await world.poll()).toMatchObject({ failed: 0, skipped: 1 });
    expect(server.messages(USER).map((m) => m.uidl)).toEqual(["uid-1"]);
    // Kept with the state, where the deployed poller may write.
    const record = JSON.parse(
      await readFile(
        path.join(world.dir, "mail-ingest-data", "state", "~refused", "box.json"),
        "utf8",
      ),
    );
    expect(record).toEqual({ version: 1, refusals: { "uid-1": 4 } });
  });

  it("ingests the demo's sample messages with attachments and parts", async () => {
    const { world } = await setup(sampleMessages());
    const report = await world.poll();
    expect(report.error).toBeUndefined();
    expect(report.ingested).toBe(sampleMessages().length);
    const queued = await world.queue();
    const attachments = queued.flatMap(
      (q) => (q.attachments as Array<{ ref: string; sha256: string }>) ?? [],
    );
    expect(attachments.length).toBeGreaterThan(0);
    for (const a of attachments) {
      const bytes = await readFile(path.join(world.dir, "mail-ingest-data", a.ref));
      expect(sha256(bytes)).toBe(a.sha256);
    }
  });
});

describe("sessions sharing one memory bound (FetchGate)", () => {
  const worlds: FsWorld[] = [];
  afterEach(async () => {
    for (const w of worlds.splice(0)) await w.cleanup();
  });

  /** A message of about `kib` KiB, distinct per `n`. */
  function sized(n: number, kib: number): TestMessage {
    const line = `${`line ${n} of a large body `.padEnd(76, "x")}\r\n`;
    return {
      uidl: `big-${n}`,
      data: Buffer.from(
        `From: a@example.com\r\nTo: b@example.com\r\nSubject: big ${n}\r\nMessage-ID: <big-${n}@example.com>\r\n\r\n${line.repeat(Math.ceil((kib * 1024) / line.length))}`,
      ),
    };
  }

  it("never streams more large messages at once than the budget holds, across sessions, and drains every mailbox", async () => {
    const users = ["one@example.test", "two@example.test", "three@example.test"];
    const mail = (u: number) => Array.from({ length: 4 }, (_, i) => sized(u * 10 + i, 200));
    server = await startPop3TestServer({
      users: Object.fromEntries(
        users.map((u, i) => [u, { password: PASSWORD, messages: mail(i) }]),
      ),
    });
    const gate = new FetchGate(300 * 1024);
    let streaming = 0;
    let mostAtOnce = 0;
    const polls = users.map(async (username) => {
      const w = await fsWorld(
        {
          host: server?.host,
          port: server?.port,
          tls: "none",
          allowInsecureAuth: true,
          username,
        },
        PASSWORD,
      );
      worlds.push(w);
      // A raw put runs while the message's bytes stream in: the window the gate bounds.
      const store = wrapStore(w.deps.store, {
        put: async (key, body, options) => {
          const raw = key.startsWith("raw/");
          if (raw) mostAtOnce = Math.max(mostAtOnce, ++streaming);
          try {
            return await w.deps.store.put(key, body, options);
          } finally {
            if (raw) streaming--;
          }
        },
      });
      return w.poll({ fetchGate: gate, deps: { store } });
    });
    const reports = await Promise.all(polls);
    expect(reports.map((r) => [r.ingested, r.error])).toEqual([
      [4, undefined],
      [4, undefined],
      [4, undefined],
    ]);
    // A 200 KiB message weighs half the 300 KiB budget (the cap): at most two stream at once,
    // whichever mailboxes they belong to. Without the gate each session streams its own.
    expect(mostAtOnce).toBeLessThanOrEqual(2);
    expect(gate.heldBytes).toBe(0);
  });
});
