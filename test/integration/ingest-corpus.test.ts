/**
 * Every file of the vendored real-world and malformed corpus goes through the whole pipeline: POP3
 * (the project's test server, which serves bytes exactly as stored), raw store, MIME parse, queue.
 * Each must be stored byte-exact and queued with a schema-valid body; a parse failure is flagged
 * in `parseError`, never lost.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Pop3TestServer, startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { corpusFiles } from "../helpers/corpus.ts";
import { type FsWorld, fsWorld, sha256 } from "../helpers/pipeline.ts";
import { schemaErrors, validateQueueBody } from "../unit/mime/validator.ts";

const CRLF = Buffer.from("\r\n");

describe("the mikel-mail corpus through the whole pipeline", () => {
  const files = corpusFiles();
  const messages = files.map((file, i) => ({ uidl: `corpus-${i}`, data: readFileSync(file) }));
  let server: Pop3TestServer;
  let world: FsWorld;

  beforeAll(async () => {
    server = await startPop3TestServer({ users: { corpus: { password: "pw", messages } } });
    world = await fsWorld(
      {
        host: server.host,
        port: server.port,
        tls: "none",
        allowInsecureAuth: true,
        username: "corpus",
      },
      "pw",
    );
  });
  afterAll(async () => {
    await server?.close();
    await world?.cleanup();
  });

  it("stores every file byte-exact and queues each once with a schema-valid body", async () => {
    expect(files.length).toBeGreaterThanOrEqual(100);
    const report = await world.poll();
    expect(report.error).toBeUndefined();
    expect(report.warnings).toEqual([]);
    expect(report).toMatchObject({ listed: files.length, ingested: files.length, failed: 0 });

    // RFC 1939 §3: a message not ending in CRLF gets one before the terminator, so that CRLF is
    // part of what RETR delivers (and what any POP3 client stores).
    const delivered = messages.map((m) =>
      m.data.length === 0 || m.data.subarray(-2).equals(CRLF)
        ? m.data
        : Buffer.concat([m.data, CRLF]),
    );
    expect([...(await world.raw()).values()].sort()).toEqual(delivered.map(sha256).sort());
    const queued = await world.queue();
    expect(queued).toHaveLength(files.length);
    for (const body of queued) {
      expect(validateQueueBody(body), schemaErrors()).toBe(true);
    }
  });
});
