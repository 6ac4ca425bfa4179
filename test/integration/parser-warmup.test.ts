/**
 * The first parse of a run must not wait for mailparser's modules to load after the first body
 * has arrived: the session loads them once the first fetches are sent, so the load overlaps their
 * round trip to a remote server (issue 14). Checked by order of events, never by timing: the POP3
 * source is the real one against the project's POP3 server, with its first fetch held back, as a
 * long round trip would hold it.
 */
import { afterEach, expect, it, vi } from "vitest";
import { pop3Source } from "../../lambdas/adapters/pop3-source.ts";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import type { MailSource } from "../../lambdas/ports.ts";
import { generateMessage } from "../helpers/messages.ts";
import { type FsWorld, fsWorld, wrapSource } from "../helpers/pipeline.ts";

/** What happened, in order: fetches sent, parser loads asked for, bodies handed over. */
const events: string[] = [];

vi.mock("../../lambdas/mime/mailparser-loader.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../lambdas/mime/mailparser-loader.ts")>();
  return {
    ...actual,
    mailparser: () => {
      events.push("parser requested");
      return actual.mailparser();
    },
  };
});

let server: Pop3TestServer | undefined;
let world: FsWorld | undefined;

afterEach(async () => {
  await server?.close();
  await world?.cleanup();
});

it("loads the parser while the first fetch is still on its way, not after its body arrives", async () => {
  server = await startPop3TestServer({
    users: {
      u: {
        password: "pw",
        messages: [
          { uidl: "a", data: generateMessage(1) },
          { uidl: "b", data: generateMessage(2) },
        ],
      },
    },
  });
  world = await fsWorld(
    { host: server.host, port: server.port, tls: "none", allowInsecureAuth: true, username: "u" },
    "pw",
  );
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let sent!: () => void;
  const firstSent = new Promise<void>((resolve) => {
    sent = resolve;
  });
  const open = pop3Source();
  const slowSource = async (...args: Parameters<typeof open>): Promise<MailSource> => {
    const source = await open(...args);
    return wrapSource(source, {
      fetch: async (message) => {
        events.push(`fetch ${message.uidl} sent`);
        sent();
        await held;
        const body = await source.fetch(message);
        events.push(`body ${message.uidl} arrived`);
        return body;
      },
    });
  };

  const polled = world.poll({ deps: { openSource: slowSource } });
  await firstSent;
  // Let the session run what it does right after sending the fetches.
  await new Promise((resolve) => setImmediate(resolve));
  expect(events).toContain("parser requested");
  release();

  const report = await polled;
  expect(report).toMatchObject({ ingested: 2, failed: 0 });
  expect(events.indexOf("parser requested")).toBeLessThan(events.indexOf("body a arrived"));
});
