/**
 * `npx cdk synth` as a user on a fresh machine runs it: no AWS credentials or profile, an empty
 * HOME, and a `docker` on PATH that records any call, proving bundling never needs Docker.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { repoRoot } from "./helpers.ts";

const scratch = mkdtempSync(path.join(tmpdir(), "mail-ingest-synth-"));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

it("synthesizes the app offline with no AWS credentials and without Docker", () => {
  const home = path.join(scratch, "home");
  const bin = path.join(scratch, "bin");
  const out = path.join(scratch, "cdk.out");
  const dockerLog = path.join(scratch, "docker-called");
  for (const dir of [home, bin]) spawnSync("mkdir", ["-p", dir]);
  writeFileSync(path.join(bin, "docker"), `#!/bin/sh\necho "$@" >> ${dockerLog}\nexit 1\n`);
  chmodSync(path.join(bin, "docker"), 0o755);

  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("AWS_") && !key.startsWith("CDK_")) env[key] = value;
  }
  env.HOME = home;
  env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ""}`;
  // Fail fast instead of waiting on the instance metadata service for credentials.
  env.AWS_EC2_METADATA_DISABLED = "true";

  const result = spawnSync(
    path.join(repoRoot, "node_modules/.bin/cdk"),
    ["synth", "--quiet", "--no-notices", "--output", out],
    // A hang guard, not a speed check: a synth with real bundling and both nag packs takes
    // ~20 s of CPU, and minutes of wall time on a shared 2-core machine.
    { cwd: repoRoot, env, encoding: "utf8", timeout: 280_000 },
  );
  expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
  expect(existsSync(dockerLog)).toBe(false);
  const template = JSON.parse(readFileSync(path.join(out, "MailIngest.template.json"), "utf8"));
  const types = Object.values(template.Resources).map((r) => (r as { Type: string }).Type);
  expect(types.filter((t) => t === "AWS::Lambda::Function")).toHaveLength(2);
  expect(types).toContain("AWS::Scheduler::Schedule");
}, 300_000);
