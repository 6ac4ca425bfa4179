/**
 * The session tops its fetch look-ahead up in groups, not one fetch per message read, so that the
 * POP3 client sends those RETRs in one write (issue 14: one write per RETR cost a TLS record, a
 * syscall and a server wake-up per message). Checked by order of events against the project's
 * POP3 server: which fetches are sent between which bodies being read to their end.
 */
import type { Readable } from "node:stream";
import { afterEach, expect, it } from "vitest";
import { pop3Source } from "../../lambdas/adapters/pop3-source.ts";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import type { MailSource } from "../../lambdas/ports.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type FsWorld, fsWorld, wrapSource } from "../helpers/pipeline.ts";

let server: Pop3TestServer | undefined;
let world: FsWorld | undefined;

afterEach(async () => {
  await server?.close();
  await world?.cleanup();
});

it("sends fetches ahead in groups: the first twelve together, then four each time four are read", async () => {
  const uidls = Array.from({ length: 20 }, (_, i) => `m${String(i).padStart(2, "0")}`);
  server = await startPop3TestServer({
    users: {
      u: {
        password: "pw",
        messages: uidls.map((uidl, i) => ({ uidl, data: generateMessage(i) })),
      },
    },
  });
  world = await fsWorld(
    { host: server.host, port: server.port, tls: "none", allowInsecureAuth: true, username: "u" },
    "pw",
  );
  /** "f" for a fetch sent, "r" for a body read to its end, in order. */
  const events: string[] = [];
  const open = pop3Source();
  const watched = async (...args: Parameters<typeof open>): Promise<MailSource> => {
    const source = await open(...args);
    return wrapSource(source, {
      fetch: (message) => {
        events.push("f");
        return source.fetch(message).then((body: Readable) => {
          body.once("end", () => events.push("r"));
          return body;
        });
      },
    });
  };

  const report = await world.poll({ deps: { openSource: watched } });
  expect(report).toMatchObject({ ingested: 20, failed: 0 });
  // Runs of fetches between reads: 12 at the start, then 4 once the look-ahead is down to 8.
  const runs = events
    .join("")
    .split("r")
    .filter((run) => run.length > 0)
    .map((run) => run.length);
  expect(runs).toEqual([12, 4, 4]);
});
