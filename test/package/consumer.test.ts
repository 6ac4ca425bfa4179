/**
 * The package as a consumer gets it: `npm pack` (which runs `prepare`, the full build), the
 * tarball installed into a temporary plain-JavaScript project, then used from there the three
 * documented ways: the CDK construct, the library in plain Node ESM, and the CLI. The project has
 * no esbuild, no tsx and no TypeScript, and runs with a PATH that holds only `node` and a `docker`
 * that records any call, so nothing here can fall back to building from our sources.
 *
 * Slow (a build, an install and a synth): its own vitest config, run by `npm run test:package`,
 * which `.ci/run` calls after `npm test`.
 */
import { execFile } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sampleMessages } from "../../lambdas/demo/messages.ts";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";

const execFileAsync = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, "../..");
const scratch = mkdtempSync(path.join(tmpdir(), "mail-ingest-consumer-"));
const app = path.join(scratch, "app");
const installed = path.join(app, "node_modules", "mail-ingest");
const dockerLog = path.join(scratch, "docker-called");

/** Only node and a recording `docker`: no npx, no esbuild, no tsx, no cdk from the repo. */
function consumerEnv(): NodeJS.ProcessEnv {
  const bin = path.join(scratch, "bin");
  const env: NodeJS.ProcessEnv = {
    PATH: `${bin}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}/usr/bin:/bin`,
    HOME: path.join(scratch, "home"),
    AWS_EC2_METADATA_DISABLED: "true",
  };
  return env;
}

/** Runs `node <script>` in the consumer project. */
async function runNode(script: string, args: string[] = []) {
  return execFileAsync(process.execPath, [script, ...args], {
    cwd: app,
    env: consumerEnv(),
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  });
}

beforeAll(async () => {
  mkdirSync(path.join(scratch, "bin"));
  mkdirSync(path.join(scratch, "home"));
  writeFileSync(
    path.join(scratch, "bin", "docker"),
    `#!/bin/sh\necho "$@" >> ${dockerLog}\nexit 1\n`,
  );
  chmodSync(path.join(scratch, "bin", "docker"), 0o755);

  // `npm pack` runs `prepare`, so this also proves a clean build from the sources succeeds.
  const packed = await execFileAsync(
    "npm",
    ["pack", "--json", "--pack-destination", scratch, "--no-audit", "--no-fund"],
    { cwd: REPO, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  const [{ filename }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as [
    { filename: string },
  ];

  mkdirSync(app);
  writeFileSync(
    path.join(app, "package.json"),
    JSON.stringify({
      name: "consumer",
      private: true,
      type: "module",
      dependencies: { "mail-ingest": `file:${path.join(scratch, filename)}` },
    }),
  );
  // From npm's cache where it can: CI's `npm ci` has just fetched every dependency.
  await execFileAsync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], {
    cwd: app,
    encoding: "utf8",
  });
  // The same aws-cdk-lib and constructs as this repository: the optional peers, as a CDK app has
  // them. Linked, because installing aws-cdk-lib (100+ MB) would dominate the test's time.
  for (const peer of ["aws-cdk-lib", "constructs"]) {
    symlinkSync(path.join(REPO, "node_modules", peer), path.join(app, "node_modules", peer));
  }
}, 600_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("the packed package, installed into a plain JavaScript project", () => {
  it("installs no build tools: no esbuild, tsx or typescript", () => {
    for (const tool of ["esbuild", "tsx", "typescript"]) {
      expect(existsSync(path.join(app, "node_modules", tool)), tool).toBe(false);
    }
    // The published files only: compiled code, bundles, bin, schema; no TypeScript sources.
    expect(existsSync(path.join(installed, "lambdas"))).toBe(false);
    expect(existsSync(path.join(installed, "dist/lambdas/index.d.ts"))).toBe(true);
  });

  it("synthesizes new MailIngestion(...) with the prebuilt handler bundles as the functions' code", async () => {
    const out = path.join(scratch, "cdk.out");
    writeFileSync(
      path.join(app, "synth.mjs"),
      `import { App, Stack } from "aws-cdk-lib";
import { MailIngestion } from "mail-ingest/cdk";
const app = new App({ outdir: process.argv[2] });
const stack = new Stack(app, "Consumer");
new MailIngestion(stack, "Mail", {
  mailboxes: [{ id: "support", host: "pop.example.com", username: "support@example.com",
    password: { secretId: "mail-ingest/support" } }],
});
const assembly = app.synth();
console.log(JSON.stringify(assembly.getStackByName("Consumer").template));
`,
    );
    const { stdout } = await runNode("synth.mjs", [out]);
    expect(existsSync(dockerLog)).toBe(false);
    const template = JSON.parse(stdout) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    const functions = Object.values(template.Resources).filter(
      (r) => r.Type === "AWS::Lambda::Function",
    );
    expect(functions).toHaveLength(2);
    for (const fn of functions) expect(fn.Properties.Handler).toBe("index.handler");

    // Each function's asset is the package's prebuilt bundle, byte for byte, with the config.
    const assetDirs = readdirSync(out).filter((name) => name.startsWith("asset."));
    const bundles = new Map(
      assetDirs
        .filter((dir) => existsSync(path.join(out, dir, "index.mjs")))
        .map((dir) => [readFileSync(path.join(out, dir, "index.mjs")).toString("base64"), dir]),
    );
    for (const name of ["dispatcher", "poller"]) {
      const prebuilt = readFileSync(path.join(installed, "dist/lambda", name, "index.mjs"));
      const dir = bundles.get(prebuilt.toString("base64"));
      expect(dir, `${name}: no asset holds the prebuilt bundle`).toBeDefined();
      const config = JSON.parse(readFileSync(path.join(out, dir ?? "", "config.json"), "utf8"));
      expect(config.mailboxes).toMatchObject([
        { id: "support", password: { secretId: "mail-ingest/support" } },
      ]);
      const key = `${(dir ?? "").slice("asset.".length)}.zip`;
      expect(
        functions.some((fn) => (fn.Properties.Code as { S3Key?: string }).S3Key === key),
        `${name}: no function deploys ${key}`,
      ).toBe(true);
    }
  });

  describe("the library from plain Node ESM", () => {
    let server: Pop3TestServer;

    beforeAll(async () => {
      server = await startPop3TestServer({
        users: { alice: { password: "pw-alice", messages: sampleMessages().slice(0, 3) } },
      });
    });
    afterAll(() => server.close());

    it("parses a config and lists a mailbox with Pop3Client", async () => {
      writeFileSync(
        path.join(app, "library.mjs"),
        `import { ErrorCode, parseConfig, Pop3Client } from "mail-ingest";
import schema from "mail-ingest/schema/queue-message.v2.json" with { type: "json" };
const config = await parseConfig(JSON.parse(process.argv[2]));
const [mailbox] = config.mailboxes;
const client = await Pop3Client.connect({ host: mailbox.host, port: mailbox.port, tls: mailbox.tls });
await client.login({ username: mailbox.username, password: mailbox.password, auth: "user", allowInsecureAuth: mailbox.allowInsecureAuth });
const uidls = await client.uidl();
await client.quit();
let rejected;
try { await parseConfig({ mailboxes: [{ id: "x" }] }); } catch (err) { rejected = err.code; }
console.log(JSON.stringify({ count: uidls.length, rejected, known: rejected === ErrorCode.CONFIG_INVALID, schema: schema.title ?? schema.$id }));
`,
      );
      const config = {
        mailboxes: [
          {
            id: "alice",
            host: server.host,
            port: server.port,
            tls: "none",
            username: "alice",
            password: "pw-alice",
            allowInsecureAuth: true,
          },
        ],
      };
      const { stdout } = await runNode("library.mjs", [JSON.stringify(config)]);
      const result = JSON.parse(stdout);
      expect(result.count).toBe(3);
      expect(result.known).toBe(true);
      expect(result.schema).toEqual(expect.any(String));
    });
  });

  it("runs the CLI from the compiled dist/: demo ingests its sample mail with no tsx", async () => {
    const dir = path.join(scratch, "demo-data");
    const { stdout, stderr } = await runNode(path.join(app, "node_modules/.bin/mail-ingest"), [
      "demo",
      "--dir",
      dir,
    ]);
    expect(stderr).not.toContain("tsx");
    expect(stdout).toContain(dir);
    expect(readdirSync(path.join(dir, "raw", "demo")).length).toBeGreaterThan(0);
  });

  it("ships the CLI's vendored mailparser and imapflow, each with a V8 code cache this Node accepts", async () => {
    // Issue 14: the caches halve their loads; a build that stopped making one, or made it under
    // other V8 flags, would only be slower, so nothing else would notice.
    writeFileSync(
      path.join(app, "vendored.mjs"),
      `import { pathToFileURL } from "node:url";
const [loader, ...bundles] = process.argv.slice(2);
const { loadVendored } = await import(pathToFileURL(loader).href);
const loaded = bundles.map((bundle) => loadVendored(bundle));
console.log(JSON.stringify(loaded.map((l) => ({ rejected: l?.cacheRejected, exports: Object.keys(l?.module ?? {}).filter((k) => k === "MailParser" || k === "ImapFlow") }))));
`,
    );
    const { stdout } = await runNode("vendored.mjs", [
      path.join(installed, "dist/lambdas/util/vendored.js"),
      path.join(installed, "dist/cli/mailparser.cjs"),
      path.join(installed, "dist/cli/imapflow.cjs"),
    ]);
    expect(JSON.parse(stdout)).toEqual([
      { rejected: false, exports: ["MailParser"] },
      { rejected: false, exports: ["ImapFlow"] },
    ]);
  });
});
