import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
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

  describe("an entry whose body is already a stored file (sameAs)", () => {
    const stored = async (name: string, body: string) => {
      const path = join(dir, name);
      await writeFile(path, body);
      return { path, uri: pathToFileURL(path).href };
    };

    it("becomes a hard link to that file, not a second copy", async () => {
      const meta = await stored("meta.json", '{"v":1}');
      const queueDir = join(dir, "queue");
      await new FsQueue({ dir: queueDir }).send([{ id: "m1", body: '{"v":1}', sameAs: meta.uri }]);
      const entry = await stat(join(queueDir, "m1.json"));
      expect(entry.ino).toBe((await stat(meta.path)).ino);
      expect(await readFile(join(queueDir, "m1.json"), "utf8")).toBe('{"v":1}');
    });

    it("is written as a copy when sameAs is not a local file", async () => {
      const queueDir = join(dir, "queue");
      await new FsQueue({ dir: queueDir }).send([
        { id: "m1", body: '{"v":1}', sameAs: "s3://bucket/meta/m1.json" },
        { id: "m2", body: '{"v":2}', sameAs: pathToFileURL(join(dir, "absent.json")).href },
      ]);
      expect(await readFile(join(queueDir, "m1.json"), "utf8")).toBe('{"v":1}');
      expect(await readFile(join(queueDir, "m2.json"), "utf8")).toBe('{"v":2}');
      expect((await stat(join(queueDir, "m1.json"))).nlink).toBe(1);
    });

    // A re-fetch after a crash sends the same id again, linked to a rewritten metadata file.
    it("replaces the entry when sent again, leaving no temp file behind", async () => {
      const queueDir = join(dir, "queue");
      const queue = new FsQueue({ dir: queueDir });
      const first = await stored("first.json", '{"v":1}');
      const second = await stored("second.json", '{"v":2}');
      await queue.send([{ id: "m1", body: '{"v":1}', sameAs: first.uri }]);
      await queue.send([{ id: "m1", body: '{"v":1}', sameAs: first.uri }]);
      await queue.send([{ id: "m1", body: '{"v":2}', sameAs: second.uri }]);
      expect(await readFile(join(queueDir, "m1.json"), "utf8")).toBe('{"v":2}');
      expect(await readFile(first.path, "utf8")).toBe('{"v":1}');
      expect(await readdir(join(queueDir, ".tmp"))).toEqual([]);
    });
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
