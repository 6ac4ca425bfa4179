/**
 * `mail-ingest demo`: the whole pipeline with no setup. Starts the built-in POP3 test server
 * on loopback with sample mail, polls it into ./mail-ingest-data, polls again to show that
 * nothing is ingested twice, and says where to look.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { createAdapters } from "../adapters/index.ts";
import { parseConfig } from "../config/index.ts";
import { sampleMessages } from "../demo/messages.ts";
import { startPop3TestServer } from "../demo/pop3-server.ts";
import { parse } from "./args.ts";
import { type CliIo, EXIT_MAILBOX_FAILED, EXIT_OK } from "./io.ts";
import { summaryLine } from "./poll.ts";
import { pollAll } from "./poll-all.ts";

const DEMO_USER = "demo@example.test";
/** Not a secret: the in-process server exists only for the length of the demo. */
const DEMO_PASSWORD = "demo-password";

export async function demoCommand(args: readonly string[], io: CliIo): Promise<number> {
  const values = parse(args, { dir: { type: "string", default: "./mail-ingest-data" } });
  const dataDir = path.resolve(io.cwd, values.dir as string);
  const server = await startPop3TestServer({
    users: { [DEMO_USER]: { password: DEMO_PASSWORD, messages: sampleMessages() } },
  });
  try {
    const config = await parseConfig({
      storage: { type: "fs", dir: dataDir },
      queue: { type: "fs", dir: path.join(dataDir, "queue") },
      mailboxes: [
        {
          id: "demo",
          host: server.host,
          port: server.port,
          tls: "none",
          // Loopback to our own test server: there is no network to protect the password from.
          allowInsecureAuth: true,
          username: DEMO_USER,
          password: DEMO_PASSWORD,
        },
      ],
    });
    const deps = await createAdapters(config.storage, config.queue);
    io.stdout.write(
      `POP3 test server on ${server.host}:${server.port} with ${server.messages(DEMO_USER).length} sample messages\n\n`,
    );

    const reports = [];
    for (const title of ["First poll:", "Second poll (UIDL state: nothing is ingested twice):"]) {
      io.stdout.write(`${title}\n`);
      for (const report of await pollAll(config, config.mailboxes, { deps })) {
        io.stdout.write(`  ${summaryLine(report)}\n\n`);
        reports.push(report);
      }
    }

    const queued = (await readdir(path.join(dataDir, "queue")).catch(() => [])).filter((name) =>
      name.endsWith(".json"),
    );
    io.stdout.write(
      [
        `Stored under ${dataDir}:`,
        `  raw/demo/<id>.eml         the messages, byte-exact`,
        `  parts/demo/<id>/…         attachments, and bodies over 64 KiB`,
        `  meta/demo/<id>.json       parsed metadata (schema v2)`,
        `  queue/<id>.json           ${queued.length} queue messages for downstream consumers`,
        `  state/                    UIDL state`,
        "",
        `Try: ls ${path.join(dataDir, "parts", "demo")} ; cat "$(ls -d ${path.join(dataDir, "queue")}/* | head -1)"`,
        "",
      ].join("\n"),
    );
    return reports.some((r) => r.error) ? EXIT_MAILBOX_FAILED : EXIT_OK;
  } finally {
    await server.close();
  }
}
