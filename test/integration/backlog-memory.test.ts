/**
 * Memory is bounded by the session's windows, not by the mailbox. Regression: every RETR stream
 * of a run was kept until its end, so a 120 MB heap ran out at about 8,000 messages and a Lambda
 * draining a backlog would have died the same way. A real CLI process with a 64 MB heap drains
 * 20,000 messages here; before the fix it died of heap exhaustion part way.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { generateMessage } from "../helpers/messages.ts";
import { finish } from "../helpers/process.ts";

const CLI = path.resolve(import.meta.dirname, "../../bin/mail-ingest.js");
const MESSAGES = 20_000;
const HEAP_MB = 64;

/**
 * fsync is not what this test is about, and 80,000 of them would dominate its time; eatmydata
 * (installed by CI) turns them into no-ops for the child alone.
 */
function eatmydata(): string[] {
  try {
    execFileSync("sh", ["-c", "command -v eatmydata"], { stdio: "ignore" });
    return ["eatmydata"];
  } catch {
    return [];
  }
}

let server: Pop3TestServer | undefined;
let dir: string | undefined;
afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(`drains ${MESSAGES} messages in a CLI process with a ${HEAP_MB} MB heap`, {
  timeout: 600_000,
}, async () => {
  const messages = Array.from({ length: MESSAGES }, (_, i) => ({
    uidl: `backlog-${i}`,
    data: generateMessage(i, { withAttachment: false }),
  }));
  server = await startPop3TestServer({ users: { u: { password: "pw", messages } } });
  dir = await mkdtemp(path.join(tmpdir(), "mi-backlog-"));
  const config = path.join(dir, "config.json");
  await writeFile(
    config,
    JSON.stringify({
      mailboxes: [
        {
          id: "backlog",
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
  const [command, ...prefix] = [...eatmydata(), process.execPath];
  const child = spawn(
    command as string,
    [...prefix, `--max-old-space-size=${HEAP_MB}`, CLI, "poll", "--config", config, "--json"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const { code, stdout, stderr } = await finish(child);
  expect(stderr).not.toMatch(/heap out of memory/);
  expect(code).toBe(0);
  const [report] = JSON.parse(stdout).mailboxes;
  expect(report).toMatchObject({ listed: MESSAGES, ingested: MESSAGES, failed: 0 });
  expect(await readdir(path.join(dir, "mail-ingest-data", "raw", "backlog"))).toHaveLength(
    MESSAGES,
  );
});
