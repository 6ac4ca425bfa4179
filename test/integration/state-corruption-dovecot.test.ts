/**
 * A damaged fs state log against a real Dovecot: the session reports every skipped line in its
 * warnings, re-fetches only what the damage made unknown (under the same ids), keeps ingesting new
 * mail, and leaves a clean log behind (issue 8, item 7: corruption used to stop the mailbox).
 */
import { appendFile, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  type DovecotHandle,
  describeDovecot,
  implicitTlsMailbox,
  startDovecot,
} from "../helpers/dovecot.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type FsWorld, fsWorld, sha256 } from "../helpers/pipeline.ts";

describeDovecot("damaged state against Dovecot", () => {
  let dovecot: DovecotHandle;
  let world: FsWorld | undefined;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ user: "state", password: "pw-state" }] });
  });
  afterAll(async () => {
    await dovecot?.stop();
    await world?.cleanup();
  });

  it("skips damaged state lines with warnings in the report, re-fetches only what they held, and keeps ingesting", async () => {
    const sent = Array.from({ length: 4 }, (_, i) => generateMessage(7000 + i));
    await dovecot.deliver("state", sent.slice(0, 3));
    world = await fsWorld(implicitTlsMailbox(dovecot, "state"), "pw-state");
    expect(await world.poll()).toMatchObject({ listed: 3, ingested: 3 });

    // Damage the log three ways: a garbage first line, one entry of a record made unreadable,
    // and a torn last line. Only the damaged entry's message is unknown afterwards.
    const log = path.join(world.dir, "mail-ingest-data", "state", "box.jsonl");
    const lines = (await readFile(log, "utf8")).split("\n").filter((l) => l !== "");
    const target = lines.findIndex((l) => JSON.parse(l).op === "record");
    const record = JSON.parse(lines[target] as string);
    const damaged = record.entries[0];
    damaged.size = "not a number";
    lines[target] = JSON.stringify(record);
    await writeFile(log, `\u0000\u0000garbage\n${lines.join("\n")}\n`);
    await appendFile(log, '{"op":"record","entries":[{"uid');
    const entriesInLine = record.entries.length as number;

    await dovecot.deliver("state", sent.slice(3));
    const report = await world.poll();
    expect(report.error).toBeUndefined();
    expect(report.warnings).toEqual([
      expect.stringContaining(`mailbox box: state ${log}: dropped a torn last line`),
      expect.stringContaining(`mailbox box: state ${log}:1: unreadable (not JSON), skipped`),
      `mailbox box: state ${log}:${target + 2}: 1 of ${entriesInLine} recorded entries unreadable (entry 1: size is not a non-negative integer), skipped; up to 1 message(s) may be fetched again under the same ids, which consumers dedupe`,
      expect.stringContaining(
        `mailbox box: state ${log}: rewrote the log without its 2 unreadable`,
      ),
    ]);
    // The new message, plus the one whose entry was lost: fetched again under the same id.
    expect(report).toMatchObject({ listed: 4, new: 2, ingested: 2, failed: 0 });
    const queued = await world.queue();
    expect(queued.map((q) => q.id).sort()).toContain(damaged.id);
    expect(new Set(queued.map((q) => q.id)).size).toBe(4);
    expect([...(await world.raw()).values()].sort()).toEqual(sent.map(sha256).sort());

    const next = await world.poll();
    expect(next).toMatchObject({ listed: 4, new: 0, ingested: 0, warnings: [] });
  });
});
