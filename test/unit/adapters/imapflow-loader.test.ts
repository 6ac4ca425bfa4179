/**
 * The compiled CLI loads imapflow from its vendored bundle (issue 14: ~80 ms against 300–370 ms
 * through `import`); without one, or when it cannot run, it must still get node_modules' copy.
 * That the bundle works against a real server: test/integration/imap-dovecot.test.ts.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, expect, it } from "vitest";
import { imapflow, loadFrom } from "../../../lambdas/adapters/imapflow-loader.ts";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "mi-imapflow-loader-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("prefers the vendored bundle, and falls back to node_modules without one or when it throws", async () => {
  const good = join(dir, "good.cjs");
  await writeFile(good, "module.exports = { ImapFlow: function Vendored() {} };");
  expect((await loadFrom(good)).ImapFlow.name).toBe("Vendored");

  const broken = join(dir, "broken.cjs");
  await writeFile(broken, 'throw new Error("damaged bundle");');
  expect((await loadFrom(broken)).ImapFlow).toBe(ImapFlow);
  expect((await loadFrom(join(dir, "absent.cjs"))).ImapFlow).toBe(ImapFlow);
});

it("from the sources (no bundle next to lambdas/adapters/), sessions get node_modules' imapflow", async () => {
  expect((await imapflow()).ImapFlow).toBe(ImapFlow);
});
