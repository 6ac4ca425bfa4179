/**
 * The compiled CLI parses with a vendored mailparser bundle run through `vm.Script` with a V8 code
 * cache (issue 14: the load went from 170–200 ms to 80–90 ms). These tests guard that it is the
 * same parser: the bundle that scripts/build.mjs makes parses every corpus file exactly as
 * node_modules' mailparser does (a bundle can silently lose a dynamically required charset table),
 * and a missing, stale or foreign code cache never changes what runs, only how fast.
 */
import { spawnSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadFrom, mailparser, useMailparser } from "../../../lambdas/mime/mailparser-loader.ts";
import { parseMessage } from "../../../lambdas/mime/parse.ts";
import { loadVendored } from "../../../lambdas/util/vendored.ts";
import { corpusFiles } from "../../helpers/corpus.ts";
import { MemoryObjectStore } from "./memory-store.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mi-mailparser-loader-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("loadFrom", () => {
  it("prefers the vendored bundle, and falls back to node_modules without one or when it throws", async () => {
    // What lambdas/mime/mailparser-loader.ts requires from node_modules (its CommonJS build).
    const required = createRequire(import.meta.url)("mailparser") as typeof import("mailparser");
    const good = join(dir, "good.cjs");
    await writeFile(good, "module.exports = { MailParser: function Vendored() {} };");
    expect((await loadFrom(good)).MailParser.name).toBe("Vendored");

    const broken = join(dir, "broken.cjs");
    await writeFile(broken, 'throw new Error("damaged bundle");');
    expect((await loadFrom(broken)).MailParser).toBe(required.MailParser);
    expect((await loadFrom(join(dir, "absent.cjs"))).MailParser).toBe(required.MailParser);
  });
});

/** What a parse produced, with every stored object reduced to its key and sha256. */
async function parseAll(files: readonly string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const [i, file] of files.entries()) {
    const store = new MemoryObjectStore();
    const parsed = await parseMessage(createReadStream(file), store, `parts/c/${i}/`);
    const objects = [...store.objects].map(([key, o]) => [key, o.sha256]);
    out.push({ file, parsed, objects });
  }
  return out;
}

/** Builds the vendored bundle as scripts/build.mjs does, to `dir/name`; returns its path. */
async function buildVendored(name: string): Promise<string> {
  const { build } = await import("esbuild");
  const { mailparserBuildOptions } = (await import("../../../scripts/build.mjs" as string)) as {
    mailparserBuildOptions(): Record<string, unknown>;
  };
  const file = join(dir, name);
  await build({ ...mailparserBuildOptions(), outfile: file });
  return file;
}

it("the build's vendored bundle parses the corpus exactly as node_modules' mailparser", async () => {
  const file = await buildVendored("mailparser.cjs");
  const files = corpusFiles();

  const fromNodeModules = await parseAll(files);
  // The default loader found no bundle next to lambdas/mime/: it required node_modules' copy.
  const required = await mailparser();
  const vendored = loadVendored<typeof required>(file);
  expect(vendored).toBeDefined();
  expect(vendored?.module.MailParser).not.toBe(required.MailParser);
  useMailparser(vendored?.module as typeof required);
  expect((await mailparser()).MailParser).toBe(vendored?.module.MailParser);

  const fromBundle = await parseAll(files);
  expect(fromBundle.length).toBe(files.length);
  for (const [i, result] of fromBundle.entries()) expect(result).toEqual(fromNodeModules[i]);
  // Not two empty results compared: the corpus stores attachments.
  expect(
    fromBundle.filter((r) => (r as { objects: unknown[] }).objects.length > 0).length,
  ).toBeGreaterThan(10);
}, 60_000);

describe("linkify-it in the vendored bundle (built on first use, scripts/vendor/lazy-linkify-it.cjs)", () => {
  /** Text links of every kind mailparser configures: its TLD list, .onion, git:, ftp:, @handles. */
  const text = [
    "See https://example.com/a?b=c and www.example.org, mail someone@example.net.",
    "Also git://example.com/repo.git, ftp://files.example.com/x, http://abc.onion/ and @someone.",
  ].join("\n");
  const message = Buffer.from(
    `From: a@example.com\r\nTo: b@example.com\r\nSubject: links\r\nContent-Type: text/plain\r\n\r\n${text.replaceAll("\n", "\r\n")}\r\n`,
  );

  it("finds the same text links as node_modules' mailparser when text links are asked for", async () => {
    const file = await buildVendored("links.cjs");
    const source = await readFile(file, "utf8");
    expect(source).toContain("scripts/vendor/lazy-linkify-it.cjs"); // the stand-in is what runs

    const required = createRequire(import.meta.url)("mailparser") as typeof import("mailparser");
    const vendored = loadVendored(file)?.module as typeof required;
    const expected = (await required.simpleParser(message)).textAsHtml;
    expect(expected).toContain('<a href="https://example.com/a?b=c">');
    expect(expected).toContain('<a href="https://twitter.com/someone">');
    expect((await vendored.simpleParser(message)).textAsHtml).toBe(expected);
  }, 60_000);

  it("requires linkify-it only when the linkifier is first used, then answers as linkify-it does", () => {
    // A child process: this worker's require cache already holds linkify-it (node_modules' mailparser).
    const script = `
      const lazy = require(${JSON.stringify(join(process.cwd(), "scripts/vendor/lazy-linkify-it.cjs"))});
      const loaded = () => Object.keys(require.cache).some((k) => /[\\\\/]linkify-it[\\\\/]/.test(k));
      const configure = (l) => l.tlds(["com", "org"]).tlds("onion", true).add("git:", "http:").set({ fuzzyEmail: false });
      const linkify = lazy();
      const chained = configure(linkify);
      const before = loaded();
      const found = linkify.match("see example.com, git://x.org/y and a@b.com").map((m) => m.url);
      const real = configure(new (require("linkify-it"))());
      console.log(JSON.stringify({ before, after: loaded(), chained: chained === linkify, found,
        expected: real.match("see example.com, git://x.org/y and a@b.com").map((m) => m.url),
        pretest: linkify.pretest("nothing here"), re: typeof linkify.re.schema_test }));
    `;
    const run = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ before: false, after: true, chained: true, pretest: false });
    expect(result.re).toBe("object");
    expect(result.found).toEqual(["http://example.com", "git://x.org/y"]);
    expect(result.found).toEqual(result.expected);
  });
});
