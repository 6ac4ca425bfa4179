/**
 * Every file of the vendored real-world/malformed corpus must parse without throwing, store
 * attachments whose bytes hash to the recorded sha256, and build a schema-valid queue message.
 * Run against the in-memory store and the real fs adapter.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FsObjectStore } from "../../../lambdas/adapters/fs-store.ts";
import { buildQueueMessage, toQueueBody } from "../../../lambdas/message/schema.ts";
import { parseMessage } from "../../../lambdas/mime/parse.ts";
import type { ObjectStore } from "../../../lambdas/ports.ts";
import { CORPUS_DIR, corpusFiles } from "../../helpers/corpus.ts";
import { MemoryObjectStore } from "./memory-store.ts";
import { schemaErrors, validateQueueBody } from "./validator.ts";

const CORPUS = CORPUS_DIR;
const files = corpusFiles();

async function sha256Of(store: ObjectStore, key: string): Promise<string> {
  const body = await store.get(key);
  if (body === null) throw new Error(`missing ${key}`);
  const hash = createHash("sha256");
  for await (const chunk of body) hash.update(chunk);
  return hash.digest("hex");
}

/** Parses one corpus file into `store`, checks what was stored, returns the parse error if any. */
async function checkFile(
  file: string,
  store: ObjectStore,
  index: number,
): Promise<string | undefined> {
  const id = index.toString(16).padStart(32, "0");
  const prefix = `parts/corpus/${id}/`;
  const raw = await readFile(file);
  const parsed = await parseMessage(createReadStream(file), store, prefix);
  for (const attachment of parsed.attachments) {
    expect(attachment.ref.startsWith(`${prefix}attachments/`)).toBe(true);
    expect(await sha256Of(store, attachment.ref)).toBe(attachment.sha256);
    expect((await store.head(attachment.ref))?.size).toBe(attachment.size);
  }
  for (const [body, name] of [
    [parsed.text, "body.txt"],
    [parsed.html, "body.html"],
  ] as const) {
    if (body?.ref !== undefined) {
      // Stored only when too large to carry inline (over 64 KiB of UTF-8).
      expect(body.size).toBeGreaterThan(64 * 1024);
      expect(body.content).toBeUndefined();
      expect((await store.head(body.ref))?.size).toBe(body.size);
    } else {
      if (body !== undefined) expect(Buffer.byteLength(body.content ?? "")).toBe(body.size);
      expect(await store.head(`${prefix}${name}`)).toBeNull();
    }
  }
  if (parsed.textPreview !== undefined) {
    expect(Buffer.byteLength(parsed.textPreview)).toBeLessThanOrEqual(1024);
  }
  const message = buildQueueMessage({
    id,
    mailbox: "corpus",
    source: { protocol: "pop3", uidl: relative(CORPUS, file) },
    ingestedAt: new Date(),
    size: raw.length,
    sha256: createHash("sha256").update(raw).digest("hex"),
    raw: { key: `raw/corpus/${id}.eml`, uri: store.uri(`raw/corpus/${id}.eml`) },
    parsed,
  });
  expect(validateQueueBody(message), `${file}: ${schemaErrors()}`).toBe(true);
  const body: unknown = JSON.parse(
    toQueueBody(message, 1024 * 1024, {
      key: `meta/corpus/${id}.json`,
      uri: store.uri(`meta/corpus/${id}.json`),
    }),
  );
  expect(validateQueueBody(body), `${file}: ${schemaErrors()}`).toBe(true);
  return parsed.parseError;
}

describe("mikel-mail corpus", () => {
  it("holds the expected 104 mails (106 files with the LICENSE and README)", () => {
    expect(files).toHaveLength(104);
  });

  it("parses every file into the memory store with verified attachments and a valid message", async () => {
    const failures: string[] = [];
    let attachments = 0;
    for (const [index, file] of files.entries()) {
      const store = new MemoryObjectStore();
      const error = await checkFile(file, store, index);
      attachments += [...store.objects.keys()].filter((k) => k.includes("/attachments/")).length;
      if (error !== undefined) failures.push(`${relative(CORPUS, file)}: ${error}`);
    }
    // mailparser recovers from every malformation in this corpus: none is a parse failure.
    expect(failures).toEqual([]);
    expect(attachments).toBeGreaterThan(20);
  });

  describe("with the fs store", () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "mime-corpus-"));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("parses every file with verified attachments and a valid message", async () => {
      const store = new FsObjectStore({ dir });
      const failures: string[] = [];
      for (const [index, file] of files.entries()) {
        const error = await checkFile(file, store, index);
        if (error !== undefined) failures.push(`${relative(CORPUS, file)}: ${error}`);
      }
      expect(failures).toEqual([]);
      expect((await stat(join(dir, "parts", "corpus"))).isDirectory()).toBe(true);
    });
  });
});
