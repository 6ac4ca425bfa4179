/**
 * The same code and config give the same Lambda asset hash from any output directory, so a
 * pipeline that synthesizes somewhere else does not redeploy unchanged functions. Guards the
 * regression where esbuild's source map named the sources relative to the bundling directory
 * inside the cloud assembly, and the hash followed the `--output` path. Bundles for real.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, AssetStaging, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MailIngestion } from "../../infra/mail-ingestion.ts";
import { cdkJsonContext } from "./helpers.ts";

const root = mkdtempSync(path.join(tmpdir(), "mail-ingest-hash-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Synthesized {
  readonly keys: Record<string, string>;
  readonly directory: string;
}

/** Synthesizes one construct into `outdir`; returns each function's asset key. */
function synthInto(outdir: string): Synthesized {
  // The in-process bundling cache would hand the second synth the first one's result.
  AssetStaging.clearAssetHashCache();
  mkdirSync(outdir, { recursive: true });
  const app = new App({ outdir, context: cdkJsonContext() });
  const stack = new Stack(app, "Hash");
  const ingestion = new MailIngestion(stack, "Ingest", {
    mailboxes: [
      {
        id: "support",
        host: "pop.example.com",
        username: "support@example.com",
        password: { secretId: "mail-ingest/support" },
      },
    ],
  });
  const assembly = app.synth();
  const functions = Template.fromStack(stack).findResources("AWS::Lambda::Function");
  const keyOf = (fn: MailIngestion["poller"]) =>
    functions[stack.getLogicalId(fn.node.defaultChild as never)]?.Properties.Code.S3Key as string;
  return {
    keys: { dispatcher: keyOf(ingestion.dispatcher), poller: keyOf(ingestion.poller) },
    directory: assembly.directory,
  };
}

let shallow: Synthesized;
let deep: Synthesized;
beforeAll(() => {
  shallow = synthInto(path.join(root, "a"));
  // A different depth changes every relative path from the bundling directory to the sources.
  deep = synthInto(path.join(root, "b", "c", "d", "e"));
}, 300_000);

describe("Lambda asset hash", () => {
  it("is the same for both functions whatever the output directory", () => {
    expect(shallow.keys.dispatcher).toMatch(/^[0-9a-f]{64}\.zip$/);
    expect(shallow.keys).toEqual(deep.keys);
    expect(shallow.keys.dispatcher).not.toBe(shallow.keys.poller);
  });

  it("ships a source map naming the sources relative to the project root", () => {
    const map = JSON.parse(
      readFileSync(
        path.join(
          deep.directory,
          `asset.${deep.keys.poller?.replace(/\.zip$/, "")}`,
          "index.mjs.map",
        ),
        "utf8",
      ),
    );
    expect(map.sources).toContain("lambdas/handlers/poller.ts");
    for (const source of map.sources as string[]) expect(source).not.toContain(root);
  });
});
