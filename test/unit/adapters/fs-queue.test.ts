import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FsQueue } from "../../../lambdas/adapters/fs-queue.ts";
import { ErrorCode } from "../../../lambdas/errors.ts";

describe("FsQueue", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "mail-ingest-fs-queue-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes each entry's body verbatim to <id>.json", async () => {
    await new FsQueue({ dir }).send([{ id: "abc123", body: '{"subject":"héllo"}' }]);
    expect(await readFile(join(dir, "abc123.json"), "utf8")).toBe('{"subject":"héllo"}');
  });

  it("replaces an entry sent again under the same id", async () => {
    const queue = new FsQueue({ dir });
    await queue.send([{ id: "same", body: '{"v":1}' }]);
    await queue.send([{ id: "same", body: '{"v":2}' }]);
    const all = [];
    for await (const e of queue.entries()) all.push(e);
    expect(all).toEqual([{ id: "same", body: '{"v":2}' }]);
  });

  it.each(["../escape", "a/b", "", "sp ace"])(
    "rejects the unsafe id %j before writing anything",
    async (id) => {
      const queue = new FsQueue({ dir });
      await expect(
        queue.send([
          { id: "good", body: "{}" },
          { id, body: "{}" },
        ]),
      ).rejects.toMatchObject({ code: ErrorCode.QUEUE_FAILED });
      expect(await readdir(dir)).toEqual([]);
    },
  );

  it("yields nothing from a queue directory that does not exist yet", async () => {
    const entries = [];
    for await (const e of new FsQueue({ dir: join(dir, "absent") }).entries()) entries.push(e);
    expect(entries).toEqual([]);
  });
});
