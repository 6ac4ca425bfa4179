/**
 * The POP3 server the bench drains: a private Dovecot when installed (the anchors were
 * measured against Dovecot 2.3; it serves the same Maildirs over IMAP too), otherwise the project's own test server in a child process, so
 * either way the measured process is only the client.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { dovecotAvailable, startDovecot } from "../test/helpers/dovecot.ts";
import { generateLargeMessage } from "../test/helpers/messages.ts";
import { startChild } from "./child-rpc.ts";
import { corpusMessages } from "./corpus.ts";

export type MaildropTls = "implicit" | "none";

/** The maildrops: the corpus, the big-message case, and the long-backlog memory case. */
export const USERS = ["bench", "big", "backlog"] as const;
export type BenchUser = (typeof USERS)[number];

export interface Delivered {
  readonly messages: number;
  readonly bytes: number;
}

export interface Maildrop {
  readonly kind: "dovecot" | "test-server";
  readonly description: string;
  readonly host: string;
  readonly port: number;
  readonly tls: MaildropTls;
  /**
   * The same maildrops served over IMAP (Dovecot imapd, the TLS mode of `tls`); undefined when
   * the server speaks POP3 only (the test server, or dovecot-imapd not installed).
   */
  readonly imapPort?: number;
  /** PEM file of the CA that signed the server certificate (TLS only). */
  readonly caFile: string | undefined;
  /** Throw-away password, the same for every bench user. */
  readonly password: string;
  /** Delivers corpus messages `from` .. `from + count - 1` to `user`. */
  deliver(user: BenchUser, from: number, count: number): Promise<Delivered>;
  /** Streams one generated large message to `user`; returns its size and sha256. */
  deliverLarge(
    user: BenchUser,
    totalBytes: number,
    attachments: number,
  ): Promise<{ bytes: number; sha256: string }>;
  stop(): Promise<void>;
}

export interface MaildropOptions {
  /** Force the project's test server even when Dovecot is installed. */
  readonly forceTestServer: boolean;
  /** Requested TLS mode; the test server may only offer plain text. */
  readonly tls: MaildropTls;
}

/** Counts and hashes bytes as they pass, so the big message is never held in memory. */
function tap(): { stream: Transform; bytes(): number; sha256(): string } {
  const hash = createHash("sha256");
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.byteLength;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes, sha256: () => hash.digest("hex") };
}

async function startDovecotMaildrop(tls: MaildropTls): Promise<Maildrop> {
  const password = randomBytes(12).toString("hex");
  const dovecot = await startDovecot({ users: USERS.map((user) => ({ user, password })) });
  const scratch = await mkdtemp(join(tmpdir(), "mail-ingest-bench-ca-"));
  const caFile = join(scratch, "ca.pem");
  await writeFile(caFile, dovecot.caPem);
  return {
    kind: "dovecot",
    description: "Dovecot (private instance, Maildir, loopback)",
    host: dovecot.host,
    port: tls === "implicit" ? dovecot.pop3sPort : dovecot.pop3Port,
    tls,
    imapPort: (tls === "implicit" ? dovecot.imapsPort : dovecot.imapPort) || undefined,
    caFile: tls === "implicit" ? caFile : undefined,
    password,
    async deliver(user, from, count) {
      let bytes = 0;
      const counted = (function* () {
        for (const message of corpusMessages(from, count)) {
          bytes += message.byteLength;
          yield message;
        }
      })();
      await dovecot.deliver(user, counted);
      return { messages: count, bytes };
    },
    async deliverLarge(user, totalBytes, attachments) {
      const t = tap();
      const source = generateLargeMessage(totalBytes, attachments);
      await dovecot.deliverStream(user, source.pipe(t.stream));
      return { bytes: t.bytes(), sha256: t.sha256() };
    },
    async stop() {
      await dovecot.stop();
      await rm(scratch, { recursive: true, force: true });
    },
  };
}

interface TestServerInfo {
  readonly host: string;
  readonly port: number;
  readonly password: string;
}

async function startTestServerMaildrop(): Promise<Maildrop> {
  const child = await startChild<TestServerInfo>("./pop3-server-child.ts");
  return {
    kind: "test-server",
    description: "the project's POP3 test server (lambdas/demo/pop3-server.ts, child process)",
    host: child.info.host,
    port: child.info.port,
    // The test server speaks plain POP3 only; every client is run without TLS to match.
    tls: "none",
    caFile: undefined,
    password: child.info.password,
    deliver: (user, from, count) => child.call<Delivered>("deliver", { user, from, count }),
    deliverLarge: (user, totalBytes, attachments) =>
      child.call("deliverLarge", { user, totalBytes, attachments }),
    stop: () => child.stop(),
  };
}

export async function startMaildrop(options: MaildropOptions): Promise<Maildrop> {
  const dovecot = dovecotAvailable();
  if (dovecot.ok && !options.forceTestServer) return startDovecotMaildrop(options.tls);
  return startTestServerMaildrop();
}

export function maildropNotice(options: MaildropOptions): string | undefined {
  const dovecot = dovecotAvailable();
  if (options.forceTestServer) return "test server forced by --test-server";
  return dovecot.ok ? undefined : `Dovecot not available (${dovecot.reason})`;
}
