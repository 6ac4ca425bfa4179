/**
 * The IMAP source and the pipeline against a real Dovecot imapd on loopback: folders (a
 * special-use Junk), TLS and STARTTLS, each afterIngest action checked on the server afterwards,
 * a crash between checkpoint and action, a UIDVALIDITY change, and incremental polls that do
 * not list a 20,000-message folder. The server is inspected with a second, independent imapflow
 * connection.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, expect, it } from "vitest";
import { imapSource, openImap } from "../../lambdas/adapters/imap-source.ts";
import { useImapflow } from "../../lambdas/adapters/imapflow-loader.ts";
import type { MailboxConfig } from "../../lambdas/config/index.ts";
import { ErrorCode } from "../../lambdas/errors.ts";
import { imapKey } from "../../lambdas/ingest/keys.ts";
import type { StateEntry } from "../../lambdas/ports.ts";
import { loadVendored } from "../../lambdas/util/vendored.ts";
import {
  type DovecotHandle,
  describeDovecotImap,
  implicitTlsImapMailbox,
  startDovecot,
} from "../helpers/dovecot.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type FsWorld, fsWorld, listFiles, sha256 } from "../helpers/pipeline.ts";
import { finish } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");

const USERS = [
  "folders",
  "tls",
  "seen",
  "flag",
  "move",
  "dele",
  "crash",
  "uidv",
  "big",
  "bytes",
  "kill",
  "check",
  "vendored",
].map((user) => ({ user, password: `pw-${user}` }));

/** An independent IMAP client logged in as `user` (password `pw-<user>`), over implicit TLS. */
async function connectInspector(dovecot: DovecotHandle, user: string): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: dovecot.host,
    port: dovecot.imapsPort,
    secure: true,
    tls: { ca: dovecot.caPem, servername: "localhost" },
    auth: { user, pass: `pw-${user}` },
    logger: false,
  });
  await client.connect();
  return client;
}

/** Messages (sha256 of their bytes) in a folder, as the server has them. */
async function hashesIn(client: ImapFlow, folder: string): Promise<string[]> {
  const box = await client.mailboxOpen(folder, { readOnly: true });
  if (box.exists === 0) return [];
  const out: string[] = [];
  for await (const m of client.fetch("1:*", { uid: true, source: true })) {
    out.push(sha256(m.source as Buffer));
  }
  return out.sort();
}

describeDovecotImap("IMAP source against Dovecot", () => {
  let dovecot: DovecotHandle;
  const worlds: FsWorld[] = [];
  const inspectors: ImapFlow[] = [];

  beforeAll(async () => {
    dovecot = await startDovecot({ users: USERS });
  });
  afterAll(async () => {
    for (const client of inspectors) await client.logout().catch(() => client.close());
    await dovecot?.stop();
    for (const w of worlds) await w.cleanup();
  });

  async function worldFor(user: string, mailbox: Record<string, unknown> = {}) {
    const world = await fsWorld(
      { ...implicitTlsImapMailbox(dovecot, user), ...mailbox },
      `pw-${user}`,
    );
    worlds.push(world);
    return world;
  }

  /** Another client's view of the server, to check what the pipeline did there. */
  async function inspect(user: string): Promise<ImapFlow> {
    const client = await connectInspector(dovecot, user);
    inspectors.push(client);
    return client;
  }

  async function uidValidityOf(client: ImapFlow, folder: string): Promise<number> {
    const status = await client.status(folder, { uidValidity: true });
    if (!status) throw new Error(`STATUS ${folder} failed`);
    return Number(status.uidValidity);
  }

  /** UID → flags of every message in a folder. */
  async function flagsIn(client: ImapFlow, folder: string): Promise<Map<number, Set<string>>> {
    const out = new Map<number, Set<string>>();
    const box = await client.mailboxOpen(folder, { readOnly: true });
    if (box.exists === 0) return out;
    for await (const m of client.fetch("1:*", { uid: true, flags: true })) {
      out.set(m.uid, m.flags ?? new Set());
    }
    return out;
  }

  const batch = (from: number, count: number) =>
    Array.from({ length: count }, (_, i) => generateMessage(from + i));

  it("reads INBOX and the special-use \\Junk folder byte-exact, with BODY.PEEK[] (no \\Seen), and a second poll lists nothing", async () => {
    const inbox = batch(100, 5);
    const junk = batch(200, 3);
    await dovecot.deliver("folders", inbox);
    await dovecot.deliver("folders", junk, "Junk");
    const commands: string[] = [];
    const world = await worldFor("folders", { folders: ["INBOX", "\\Junk"] });
    const report = await world.poll({
      deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
    });
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ listed: 8, new: 8, ingested: 8, failed: 0 });
    expect([...(await world.raw()).values()].sort()).toEqual(
      [...inbox, ...junk].map(sha256).sort(),
    );
    const queued = await world.queue();
    // Schema v2's `source` names the folder by its listed name, with UIDVALIDITY and UID.
    const client = await inspect("folders");
    const junkValidity = await uidValidityOf(client, "Junk");
    expect(queued.map((q) => q.source)).toContainEqual({
      protocol: "imap",
      folder: "Junk",
      uidValidity: junkValidity,
      uid: 1,
    });
    const folderOf = (q: Record<string, unknown>) => (q.source as { folder?: string }).folder;
    expect(queued.filter((q) => folderOf(q) === "INBOX")).toHaveLength(inbox.length);
    // The id is the sha256 over mailbox, folder, UIDVALIDITY and UID (ingest/keys.ts).
    const expectedId = createHash("sha256")
      .update(`box\nJunk\n${await uidValidityOf(client, "Junk")}\n1`)
      .digest("hex")
      .slice(0, 32);
    expect(queued.map((q) => q.id)).toContain(expectedId);
    expect(commands.some((c) => /BODY\.PEEK\[\]/.test(c))).toBe(true);
    expect(commands.some((c) => /BODY\[\]/.test(c))).toBe(false);
    for (const folder of ["INBOX", "Junk"]) {
      for (const flags of (await flagsIn(client, folder)).values()) {
        expect(flags.has("\\Seen")).toBe(false);
      }
    }
    expect(await world.poll()).toMatchObject({ listed: 0, new: 0, ingested: 0 });
    expect(await world.queue()).toHaveLength(8);
  });

  it("the compiled CLI's vendored imapflow (one CommonJS bundle, scripts/build.mjs) ingests byte-exact and deletes by UID", async () => {
    // The compiled CLI loads imapflow from dist/cli/imapflow.cjs (adapters/imapflow-loader.ts);
    // every other test here runs node_modules' imapflow. A bundle can lose a dynamically
    // required file, or differ in the internals imap-source.ts relies on.
    const { build } = await import("esbuild");
    const { imapflowBuildOptions } = (await import("../../scripts/build.mjs" as string)) as {
      imapflowBuildOptions(): Record<string, unknown>;
    };
    const dir = await mkdtemp(path.join(tmpdir(), "mi-imapflow-bundle-"));
    const file = path.join(dir, "imapflow.cjs");
    await build({ ...imapflowBuildOptions(), outfile: file });
    const vendored = loadVendored<typeof import("imapflow")>(file)?.module;
    if (!vendored) throw new Error("no bundle built");
    expect(vendored.ImapFlow).not.toBe(ImapFlow);
    // The internal that imap-source.ts wraps to choose the OAuth2 mechanism.
    expect(vendored.ImapFlow.prototype).toHaveProperty("authenticate", expect.any(Function));
    useImapflow(vendored);
    try {
      const messages = batch(900, 4);
      await dovecot.deliver("vendored", messages);
      const commands: string[] = [];
      const world = await worldFor("vendored", { afterIngest: "delete" });
      const report = await world.poll({
        deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
      });
      expect(report.error).toBeUndefined();
      expect(report).toMatchObject({ ingested: 4, deleted: 4, failed: 0 });
      expect([...(await world.raw()).values()].sort()).toEqual(messages.map(sha256).sort());
      expect(commands.some((c) => /UID EXPUNGE/.test(c))).toBe(true);
      expect((await flagsIn(await inspect("vendored"), "INBOX")).size).toBe(0);
    } finally {
      useImapflow(await import("imapflow"));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a folder with a non-ASCII name (modified UTF-7 on the wire, RFC 3501 §5.1.3) is read by its decoded name", async () => {
    const client = await inspect("folders");
    await client.mailboxCreate("Entwürfe");
    const message = generateMessage(250);
    await client.append("Entwürfe", message);
    const commands: string[] = [];
    const world = await worldFor("folders", { folders: ["Entwürfe"] });
    const report = await world.poll({
      deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
    });
    expect(report.error).toBeUndefined();
    expect(report.ingested).toBe(1);
    expect([...(await world.raw()).values()]).toEqual([sha256(message)]);
    expect(commands.some((c) => c.includes("Entw&APw-rfe"))).toBe(true);
    expect((await world.queue())[0]?.source).toMatchObject({
      protocol: "imap",
      folder: "Entwürfe",
    });
  });

  it("a configured folder that does not exist fails the session with an error naming it", async () => {
    const world = await worldFor("folders", { folders: ["INBOX", "Nope"] });
    const report = await world.poll();
    expect(report.errorCode).toBe(ErrorCode.FOLDER_NOT_FOUND);
    expect(report.error).toMatch(/box.*"Nope" does not exist/);
  });

  it("STARTTLS: capabilities are read again after the upgrade, before authenticating", async () => {
    await dovecot.deliver("tls", batch(300, 2));
    const commands: string[] = [];
    const world = await worldFor("tls", { tls: "starttls", port: dovecot.imapPort });
    const report = await world.poll({
      deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
    });
    expect(report.error).toBeUndefined();
    expect(report.ingested).toBe(2);
    const starttls = commands.indexOf("STARTTLS");
    const auth = commands.findIndex((c) => /^(AUTHENTICATE|LOGIN)/.test(c));
    expect(starttls).toBeGreaterThanOrEqual(0);
    // RFC 9051 §6.2.1: the pre-TLS list could have been rewritten by an attacker.
    expect(commands.slice(starttls + 1, auth)).toContain("CAPABILITY");
    expect(commands.slice(0, starttls).some((c) => /^(AUTHENTICATE|LOGIN)/.test(c))).toBe(false);
  });

  it("refuses to authenticate in the clear without allowInsecureAuth, and checks the certificate", async () => {
    const plain = await worldFor("tls", { tls: "none", port: dovecot.imapPort });
    expect((await plain.poll()).errorCode).toBe(ErrorCode.INSECURE_AUTH);
    const allowed = await worldFor("tls", {
      tls: "none",
      port: dovecot.imapPort,
      allowInsecureAuth: true,
    });
    expect((await allowed.poll()).error).toBeUndefined();
    const untrusted = await worldFor("tls", { ca: undefined });
    const report = await untrusted.poll();
    expect(report.errorCode).toBe(ErrorCode.TLS_FAILED);
    const wrongPassword = await worldFor("tls");
    const denied = await wrongPassword.poll({ credentials: { password: "wrong" } });
    expect(denied.errorCode).toBe(ErrorCode.AUTH_FAILED);
    expect(denied.error).not.toContain("wrong");
  });

  it("markSeen sets \\Seen on exactly the ingested messages", async () => {
    await dovecot.deliver("seen", batch(400, 4));
    const world = await worldFor("seen", { afterIngest: "markSeen" });
    const report = await world.poll({ mailbox: { maxMessagesPerRun: 3 } });
    expect(report).toMatchObject({ ingested: 3, deleted: 3 });
    const flags = await flagsIn(await inspect("seen"), "INBOX");
    expect([...flags].map(([uid, f]) => [uid, f.has("\\Seen")])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, false],
    ]);
    // Flagged messages stay known: the next poll takes only the fourth, and queues nothing twice.
    expect(await world.poll()).toMatchObject({ listed: 1, ingested: 1 });
    expect(await world.poll()).toMatchObject({ listed: 0, ingested: 0 });
    expect(await world.queue()).toHaveLength(4);
  });

  it("{flag} sets the keyword and nothing else", async () => {
    await dovecot.deliver("flag", batch(500, 3));
    const world = await worldFor("flag", { afterIngest: { flag: "$Ingested" } });
    expect(await world.poll()).toMatchObject({ ingested: 3, deleted: 3 });
    for (const f of (await flagsIn(await inspect("flag"), "INBOX")).values()) {
      expect([...f].sort()).toEqual(["$Ingested"]);
    }
    expect(await world.poll()).toMatchObject({ listed: 0, ingested: 0 });
  });

  it("{moveTo, create} creates the folder and moves every ingested message there by UID MOVE", async () => {
    const sent = batch(600, 5);
    await dovecot.deliver("move", sent);
    const commands: string[] = [];
    const world = await worldFor("move", { afterIngest: { moveTo: "Processed", create: true } });
    const report = await world.poll({
      deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
    });
    expect(report).toMatchObject({ ingested: 5, deleted: 5 });
    const client = await inspect("move");
    expect(await hashesIn(client, "INBOX")).toEqual([]);
    expect(await hashesIn(client, "Processed")).toEqual(sent.map(sha256).sort());
    expect(commands.filter((c) => c.startsWith("UID MOVE"))).toHaveLength(5);
    expect(commands.some((c) => /^EXPUNGE/.test(c))).toBe(false);
    expect(await world.poll()).toMatchObject({ listed: 0, ingested: 0 });
  });

  it("moveTo without create refuses at connect, naming the folder", async () => {
    const world = await worldFor("move", { afterIngest: { moveTo: "Elsewhere" } });
    const report = await world.poll();
    expect(report.errorCode).toBe(ErrorCode.FOLDER_NOT_FOUND);
    expect(report.error).toMatch(/"Elsewhere"/);
  });

  it("delete expunges by UID only: another client's \\Deleted message stays", async () => {
    await dovecot.deliver("dele", batch(700, 2));
    const client = await inspect("dele");
    await client.mailboxOpen("INBOX");
    // Another client marked message 2 \Deleted without expunging it; a plain EXPUNGE would
    // remove it with ours.
    await client.messageFlagsAdd("2", ["\\Deleted"], { uid: true });
    const world = await worldFor("dele", { afterIngest: "delete" });
    expect(await world.poll({ mailbox: { maxMessagesPerRun: 1 } })).toMatchObject({
      ingested: 1,
      deleted: 1,
    });
    const left = await flagsIn(client, "INBOX");
    expect([...left.keys()]).toEqual([2]);
    expect(left.get(2)?.has("\\Deleted")).toBe(true);
  });

  it("a crash between checkpoint and action: the next poll applies the action without ingesting again", async () => {
    const sent = batch(800, 4);
    await dovecot.deliver("crash", sent);
    // The first run stands for one killed after its checkpoints: ingested, nothing moved.
    const world = await worldFor("crash");
    expect(await world.poll()).toMatchObject({ ingested: 4 });
    const client = await inspect("crash");
    await client.mailboxCreate("Done");
    const report = await world.poll({
      mailbox: { afterIngest: { moveTo: "Done", create: false }, delete: "after-ingest" },
    });
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ new: 0, ingested: 0, deleted: 4 });
    expect(await hashesIn(client, "Done")).toEqual(sent.map(sha256).sort());
    expect(await hashesIn(client, "INBOX")).toEqual([]);
    expect(await world.queue()).toHaveLength(4);
  });

  it("SIGKILL of the real CLI mid-run with moveTo, then a rerun: nothing lost or stored twice, each message moved exactly once", async () => {
    const sent = batch(5000, 150);
    await dovecot.deliver("kill", sent);
    const world = await worldFor("kill");
    const configFile = path.join(world.dir, "config.json");
    await writeFile(
      configFile,
      JSON.stringify({
        mailboxes: [
          {
            id: "box",
            ...implicitTlsImapMailbox(dovecot, "kill"),
            password: { env: "KILL_IMAP_PASSWORD" },
            afterIngest: { moveTo: "Processed", create: true },
          },
        ],
      }),
    );
    const rawDir = path.join(world.dir, "mail-ingest-data", "raw");
    const poll = () =>
      spawn(process.execPath, [CLI, "poll", "--config", configFile, "--json"], {
        env: { ...process.env, KILL_IMAP_PASSWORD: "pw-kill" },
        stdio: ["ignore", "pipe", "pipe"],
      });
    for (const killAt of [10, 60, 110]) {
      const child = poll();
      const exited = new Promise((resolve) => child.once("exit", resolve));
      while ((await listFiles(rawDir)).length < killAt && child.exitCode === null) await sleep(10);
      child.kill("SIGKILL");
      await exited;
    }
    const client = await inspect("kill");
    // The kills came mid-run: mail was still waiting in INBOX.
    expect((await hashesIn(client, "INBOX")).length).toBeGreaterThan(0);
    const result = await finish(poll());
    expect(result.code, result.stdout).toBe(0);
    expect([...(await world.raw()).values()].sort()).toEqual(sent.map(sha256).sort());
    const queued = await world.queue();
    expect(queued).toHaveLength(150);
    expect(new Set(queued.map((q) => q.sha256))).toEqual(new Set(sent.map(sha256)));
    expect(await hashesIn(client, "INBOX")).toEqual([]);
    // Exactly once: a second move of the same message would leave two copies here.
    expect(await hashesIn(client, "Processed")).toEqual(sent.map(sha256).sort());
  });

  it("the CLI's check lists folders with special-use, counts and new per configured folder, and the capabilities", async () => {
    await dovecot.deliver("check", batch(6000, 3));
    await dovecot.deliver("check", batch(6100, 2), "Junk");
    const world = await worldFor("check", { folders: ["INBOX", "\\Junk"] });
    const configFile = path.join(world.dir, "config.json");
    await writeFile(
      configFile,
      JSON.stringify({
        mailboxes: [
          {
            id: "box",
            ...implicitTlsImapMailbox(dovecot, "check"),
            password: "pw-check",
            folders: ["INBOX", "\\Junk"],
          },
        ],
      }),
    );
    const check = () =>
      finish(
        spawn(process.execPath, [CLI, "check", "--config", configFile], {
          stdio: ["ignore", "pipe", "pipe"],
        }),
      );
    const before = await check();
    expect(before.code, before.stdout).toBe(0);
    expect(before.stdout).toContain("capabilities: MOVE yes, UIDPLUS yes, CONDSTORE yes");
    expect(before.stdout).toMatch(/folders: .*Junk \(\\Junk\)/);
    expect(before.stdout).toContain("INBOX: 3 message(s), 3 new");
    expect(before.stdout).toContain("\\Junk = Junk: 2 message(s), 2 new");
    expect(await world.poll()).toMatchObject({ ingested: 5 });
    const after = await check();
    expect(after.stdout).toContain("INBOX: 3 message(s), 0 new");
    expect(after.stdout).toContain("\\Junk = Junk: 2 message(s), 0 new");
  });

  it("a UIDVALIDITY change (folder recreated) records matching messages under their new UIDs without queueing them again", async () => {
    const sent = batch(900, 12);
    await dovecot.deliver("uidv", sent, "Work");
    const world = await worldFor("uidv", { folders: ["Work"] });
    expect(await world.poll()).toMatchObject({ ingested: 12 });
    const client = await inspect("uidv");
    const before = await uidValidityOf(client, "Work");
    await client.mailboxDelete("Work");
    await client.mailboxCreate("Work");
    const after = await uidValidityOf(client, "Work");
    expect(after).not.toBe(before);
    const extra = generateMessage(999);
    await dovecot.deliver("uidv", [...sent, extra], "Work");
    // Two capped runs: the second must still match sha256s against the old UIDVALIDITY's keys.
    const first = await world.poll({ mailbox: { maxMessagesPerRun: 5 } });
    expect(first.error).toBeUndefined();
    expect(first).toMatchObject({ new: 13, ingested: 0, skipped: 5 });
    expect(first.warnings.join("\n")).toMatch(/UIDVALIDITY changed/);
    const second = await world.poll();
    expect(second).toMatchObject({ new: 8, ingested: 1, skipped: 7 });
    expect(await world.queue()).toHaveLength(13);
    expect(await world.poll()).toMatchObject({ listed: 0, ingested: 0 });
    const state = await world.deps.state.load("box");
    // Old-UIDVALIDITY keys are dropped once everything under the new one is known.
    expect([...state.keys()].every((k) => k.includes(`\n${after}\n`))).toBe(true);
    expect(state.size).toBe(13);
  });

  it("an incremental poll of a 20,000-message folder asks only for UIDs above the highest known, plus the gaps", async () => {
    const count = 20_000;
    await dovecot.deliver(
      "big",
      (function* () {
        for (let i = 0; i < count; i++) {
          yield Buffer.from(`Subject: ${i}\r\nMessage-ID: <${i}@big>\r\n\r\nbody ${i}\r\n`);
        }
      })(),
      "Big",
    );
    const client = await inspect("big");
    const uidValidity = await uidValidityOf(client, "Big");
    const world = await worldFor("big", { folders: ["Big"] });
    // State as if every message but UID 777 (left by an earlier error) had been ingested.
    const entries: StateEntry[] = [];
    for (let uid = 1; uid <= count; uid++) {
      if (uid === 777) continue;
      entries.push({
        uidl: imapKey("Big", uidValidity, uid),
        id: `id${uid}`,
        ingestedAt: new Date().toISOString(),
        size: 40,
        sha256: `sha${uid}`,
      });
    }
    await world.deps.state.record("box", entries);
    const fresh = generateMessage(20_001);
    await dovecot.deliver("big", [fresh], "Big");
    const commands: string[] = [];
    const report = await world.poll({
      deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
    });
    expect(report.error).toBeUndefined();
    expect(report).toMatchObject({ listed: 2, new: 2, ingested: 2 });
    // The listing commands' UID sets (imapflow adds MODSEQ once CONDSTORE is enabled).
    const listed = commands
      .filter((c) => !c.includes("BODY.PEEK"))
      .map((c) => /^UID FETCH (\S+) \(UID RFC822\.SIZE/.exec(c)?.[1])
      .filter((set) => set !== undefined);
    expect(listed).toEqual([`${count + 1}:*`, "777"]);
    expect(commands.some((c) => /SEARCH/.test(c))).toBe(false);
    expect([...(await world.raw()).values()]).toContain(sha256(fresh));
  });

  it("download gives the exact bytes and asks for the next chunk only once the last was read", async () => {
    // 3 MiB with bare CR, NUL-free binary-ish bytes and long lines, in CRLF so Dovecot serves it as stored.
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = 0x20 + ((i * 7919) % 95);
    for (let i = 1000; i < body.length; i += 997) body.write("\r\n", i - 1, "latin1");
    const message = Buffer.concat([Buffer.from("Subject: big\r\n\r\n"), body, Buffer.from("\r\n")]);
    await dovecot.deliver("bytes", [message]);
    const commands: string[] = [];
    const mailbox = {
      ...implicitTlsImapMailbox(dovecot, "bytes"),
      id: "bytes",
      auth: "auto",
      allowInsecureAuth: false,
      timeoutMs: 30_000,
      delete: "never",
      maxMessageBytes: 10 * 1024 * 1024,
      password: "x",
      folders: ["INBOX"],
      afterIngest: "none",
    } satisfies MailboxConfig;
    const source = await imapSource({ trace: (c) => commands.push(c), chunkBytes: 64 * 1024 })(
      mailbox,
      { password: "pw-bytes" },
    );
    const listing = await source.list(new Map());
    const [only] = listing.messages;
    if (!only) throw new Error("nothing listed");
    const stream = await source.fetch(only);
    // Not reading: imapflow must stop after the chunk that fills the stream's buffer.
    const chunkFetches = () => commands.filter((c) => /BODY\.PEEK\[\]</.test(c)).length;
    for (let i = 0; i < 20; i++) await sleep(25);
    const whilePaused = chunkFetches();
    expect(whilePaused).toBeLessThanOrEqual(3);
    const parts: Buffer[] = [];
    for await (const chunk of stream) parts.push(chunk as Buffer);
    expect(sha256(Buffer.concat(parts))).toBe(sha256(message));
    expect(chunkFetches()).toBeGreaterThan(40);
    await source.close();
  });

  it("openImap maps a refused login to AUTH_FAILED without echoing the password", async () => {
    const mailbox = {
      ...implicitTlsImapMailbox(dovecot, "bytes"),
      id: "x",
      auth: "login",
      allowInsecureAuth: false,
      timeoutMs: 30_000,
      delete: "never",
      maxMessageBytes: 1,
      password: "x",
    } satisfies MailboxConfig;
    await expect(openImap(mailbox, { password: "s3cret-guess" })).rejects.toMatchObject({
      code: ErrorCode.AUTH_FAILED,
      message: expect.not.stringContaining("s3cret-guess"),
    });
  });

  it.each(["xoauth2", "oauthbearer"] as const)(
    "auth %s on a server that does not offer it: AUTH_UNSUPPORTED before any AUTHENTICATE, no fallback",
    async (auth) => {
      // This instance has no oauth2 passdb, so it offers neither OAuth2 mechanism.
      const mailbox = {
        ...implicitTlsImapMailbox(dovecot, "bytes"),
        id: "x",
        auth,
        allowInsecureAuth: false,
        timeoutMs: 30_000,
        delete: "never",
        maxMessageBytes: 1,
        password: "x",
      } satisfies MailboxConfig;
      const sent: string[] = [];
      await expect(
        openImap(mailbox, { accessToken: "tok-never-sent" }, { trace: (c) => sent.push(c) }),
      ).rejects.toMatchObject({
        code: ErrorCode.AUTH_UNSUPPORTED,
        message: expect.stringContaining(`AUTH=${auth.toUpperCase()}`),
      });
      expect(sent.filter((c) => /^(AUTHENTICATE|LOGIN)\b/.test(c))).toEqual([]);
    },
  );
});

describeDovecotImap("IMAP moveTo against a Dovecot without MOVE (RFC 6851)", () => {
  let dovecot: DovecotHandle;
  let world: FsWorld | undefined;
  let inspector: ImapFlow | undefined;
  const user = "nomove";

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [{ user, password: `pw-${user}` }],
      // Dovecot's post-login list without MOVE: imapflow must fall back to COPY + EXPUNGE.
      imapCapability:
        "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE UNSELECT CHILDREN UIDPLUS LIST-EXTENDED LIST-STATUS SPECIAL-USE CONDSTORE ESEARCH",
    });
  });
  afterAll(async () => {
    await inspector?.logout().catch(() => inspector?.close());
    await world?.cleanup();
    await dovecot?.stop();
  });

  it("moves by UID COPY then UID EXPUNGE of exactly the ingested UIDs: another client's \\Deleted message stays", async () => {
    const sent = [800, 801, 802].map((n) => generateMessage(n));
    await dovecot.deliver(user, sent);
    inspector = await connectInspector(dovecot, user);
    expect(inspector.capabilities.has("MOVE")).toBe(false);
    // Another client's message (UID 4), marked \Deleted but not expunged, which this run leaves
    // for later (maxMessagesPerRun 3): a plain EXPUNGE after the COPY would take it too.
    const theirs = generateMessage(899);
    await inspector.append("INBOX", theirs, ["\\Deleted"]);

    const commands: string[] = [];
    world = await fsWorld(
      {
        ...implicitTlsImapMailbox(dovecot, user),
        afterIngest: { moveTo: "Processed", create: true },
      },
      `pw-${user}`,
    );
    const report = await world.poll({
      mailbox: { maxMessagesPerRun: 3 },
      deps: { openSource: imapSource({ trace: (c) => commands.push(c) }) },
    });
    expect(report).toMatchObject({ ingested: 3, deleted: 3, remaining: 1 });
    expect(commands.filter((c) => c.startsWith("UID MOVE"))).toEqual([]);
    expect(commands.filter((c) => c.startsWith("UID COPY"))).toHaveLength(3);
    expect(commands.filter((c) => c.startsWith("UID EXPUNGE"))).toHaveLength(3);
    expect(commands.some((c) => /^EXPUNGE/.test(c))).toBe(false);

    expect(await hashesIn(inspector, "Processed")).toEqual(sent.map(sha256).sort());
    expect(await hashesIn(inspector, "INBOX")).toEqual([sha256(theirs)]);
  });
});
