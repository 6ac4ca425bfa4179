/**
 * What a poll with nothing new loads: the issue 11 goal (such a poll in at most 0.3 s) rests on
 * not loading mailparser and its dependencies, the bulk of the CLI's module loading, when no
 * message is parsed. Checked in the real CLI process through its CommonJS module cache, never by
 * timing. Regressions: `lambdas/mime/parse.ts` imported mailparser at the top, and
 * `ingest/session.ts` imported the IMAP source (imapflow, pino…) for every poll.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type Finished, finish } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");

/** Preloaded into the CLI: on exit, says whether any mailparser file was loaded (CommonJS). */
const PROBE = `import { createRequire, register } from "node:module";
const require = createRequire(import.meta.url);
process.on("exit", () => {
  const loaded = Object.keys(require.cache).some((file) => file.includes("/node_modules/mailparser/"));
  process.stderr.write("mailparser-loaded=" + loaded + "\\n");
});
register(new URL("./esm-probe.mjs", import.meta.url));
`;

/**
 * ES modules (imapflow ships an ESM build) are not in the CommonJS cache: a resolve hook, run on
 * the loader thread, appends every imapflow URL it resolves to the file named by PROBE_OUT.
 */
const ESM_PROBE = `import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (result.url.includes("/node_modules/imapflow/")) appendFileSync(process.env.PROBE_OUT, result.url + "\\n");
  return result;
}
`;

let dir: string;
let server: Pop3TestServer;
let config: string;
let probe: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mi-startup-"));
  server = await startPop3TestServer({
    users: { u: { password: "pw", messages: [{ uidl: "m0", data: generateMessage(0) }] } },
  });
  probe = path.join(dir, "probe.mjs");
  await writeFile(probe, PROBE);
  await writeFile(path.join(dir, "esm-probe.mjs"), ESM_PROBE);
  config = path.join(dir, "config.json");
  await writeFile(
    config,
    JSON.stringify({
      storage: { type: "fs", dir: path.join(dir, "data") },
      mailboxes: [
        {
          id: "u",
          host: server.host,
          port: server.port,
          tls: "none",
          allowInsecureAuth: true,
          username: "u",
          password: "pw",
        },
      ],
    }),
  );
});

afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function poll(env: NodeJS.ProcessEnv = process.env): Promise<Finished> {
  return finish(
    spawn(process.execPath, ["--import", probe, CLI, "poll", "--config", config, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
      env,
    }),
  );
}

it("loads mailparser only for a poll that parses mail, not for one with nothing new", async () => {
  const first = await poll();
  expect(first.code, first.stderr).toBe(0);
  expect(JSON.parse(first.stdout).mailboxes[0].ingested).toBe(1);
  // The probe sees mailparser when it is used: its "false" below is not a blind spot.
  expect(first.stderr).toContain("mailparser-loaded=true");

  const second = await poll();
  expect(second.code, second.stderr).toBe(0);
  expect(JSON.parse(second.stdout).mailboxes[0]).toMatchObject({ listed: 1, new: 0 });
  expect(second.stderr).toContain("mailparser-loaded=false");
});

it("never loads imapflow for a POP3 mailbox (regression: session.ts imported the IMAP source)", async () => {
  const out = path.join(dir, "esm-loaded.txt");
  await writeFile(out, "");
  const run = await poll({ ...process.env, PROBE_OUT: out });
  expect(run.code, run.stderr).toBe(0);
  expect(await readFile(out, "utf8")).toBe("");
});
