/**
 * Every file of the vendored real-world and malformed corpus goes through the whole pipeline, once
 * per mail source: POP3 (the project's test server, which serves bytes exactly as stored) and
 * IMAP (Dovecot imapd, the files seeded straight into its Maildir). Each must be stored
 * byte-exact and queued with a body valid against schema/queue-message.v2.json; a parse failure
 * is flagged in `parseError`, never lost.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPop3TestServer } from "../../lambdas/demo/pop3-server.ts";
import { corpusFiles } from "../helpers/corpus.ts";
import { imapAvailable, implicitTlsImapMailbox, startDovecot } from "../helpers/dovecot.ts";
import { type FsWorld, fsWorld, sha256 } from "../helpers/pipeline.ts";
import { schemaErrors, validateQueueBody } from "../unit/mime/validator.ts";

const CRLF = Buffer.from("\r\n");
const LF = 0x0a;
const CR = 0x0d;

/** A server holding the corpus: the mailbox fields that reach it, and how to stop it. */
interface CorpusServer {
  readonly mailbox: Record<string, unknown>;
  readonly password: string;
  /** The bytes a correct client receives for `data` from this server. */
  delivered(data: Buffer): Buffer;
  close(): Promise<unknown>;
}

/** Adds a CR before every LF that lacks one. */
function crlf(data: Buffer): Buffer {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const byte = data[i] as number;
    if (byte === LF && (i === 0 || data[i - 1] !== CR)) out.push(CR);
    out.push(byte);
  }
  return Buffer.from(out);
}

const SOURCES = {
  async pop3(messages: readonly Buffer[]): Promise<CorpusServer> {
    const server = await startPop3TestServer({
      users: {
        corpus: {
          password: "pw",
          messages: messages.map((data, i) => ({ uidl: `corpus-${i}`, data })),
        },
      },
    });
    return {
      mailbox: {
        host: server.host,
        port: server.port,
        tls: "none",
        allowInsecureAuth: true,
        username: "corpus",
      },
      password: "pw",
      // RFC 1939 §3: a message not ending in CRLF gets one before the terminator, so that CRLF
      // is part of what RETR delivers (and what any POP3 client stores).
      delivered: (data) =>
        data.length === 0 || data.subarray(-2).equals(CRLF) ? data : Buffer.concat([data, CRLF]),
      close: () => server.close(),
    };
  },
  async imap(messages: readonly Buffer[]): Promise<CorpusServer> {
    const dovecot = await startDovecot({ users: [{ user: "corpus", password: "pw" }] });
    await dovecot.deliver("corpus", messages);
    return {
      mailbox: { ...implicitTlsImapMailbox(dovecot, "corpus"), folders: ["INBOX"] },
      password: "pw",
      // IMAP sends CRLF line ends (RFC 3501 §2.2, §4.3); Dovecot adds the CR a Maildir file's
      // bare LF lacks, and changes nothing else.
      delivered: crlf,
      close: () => dovecot.stop(),
    };
  },
} satisfies Record<string, (messages: readonly Buffer[]) => Promise<CorpusServer>>;

const PROTOCOLS = (["pop3", "imap"] as const).filter((p) => p === "pop3" || imapAvailable);

describe.each(PROTOCOLS)("the mikel-mail corpus through the whole pipeline over %s", (protocol) => {
  const files = corpusFiles();
  const messages = files.map((file) => readFileSync(file));
  let server: CorpusServer;
  let world: FsWorld;

  beforeAll(async () => {
    server = await SOURCES[protocol](messages);
    world = await fsWorld(server.mailbox, server.password);
  });
  afterAll(async () => {
    await server?.close();
    await world?.cleanup();
  });

  it("stores every file byte-exact and queues each once with a schema-valid v2 body", async () => {
    expect(files.length).toBeGreaterThanOrEqual(100);
    const report = await world.poll();
    expect(report.error).toBeUndefined();
    expect(report.warnings).toEqual([]);
    expect(report).toMatchObject({ listed: files.length, ingested: files.length, failed: 0 });

    const delivered = messages.map(server.delivered);
    expect([...(await world.raw()).values()].sort()).toEqual(delivered.map(sha256).sort());
    const queued = await world.queue();
    expect(queued).toHaveLength(files.length);
    for (const body of queued) {
      expect(validateQueueBody(body), schemaErrors()).toBe(true);
      expect(body).toMatchObject({ source: { protocol } });
    }
    expect(new Set(queued.map((q) => q.id)).size).toBe(files.length);
  });
});
