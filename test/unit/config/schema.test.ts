import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  DEFAULT_MAX_MESSAGE_BYTES,
  loadConfigFile,
  parseConfig,
} from "../../../lambdas/config/index.ts";

const mailbox = {
  id: "support",
  host: "pop.example.com",
  username: "support@example.com",
  password: { env: "SUPPORT_POP_PASSWORD" },
};

async function fieldOf(json: unknown): Promise<string> {
  try {
    await parseConfig(json, "/base");
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).field;
  }
  throw new Error("config was accepted");
}

describe("parseConfig", () => {
  it("fills the documented defaults: fs storage and queue under ./mail-ingest-data, implicit TLS on 995", async () => {
    const config = await parseConfig({ mailboxes: [mailbox] }, "/base");
    expect(config.storage).toEqual({ type: "fs", dir: "/base/mail-ingest-data" });
    expect(config.queue).toEqual({ type: "fs", dir: "/base/mail-ingest-data/queue" });
    const [m] = config.mailboxes;
    expect(m).toMatchObject({
      tls: "implicit",
      port: 995,
      auth: "auto",
      delete: "never",
      allowInsecureAuth: false,
      timeoutMs: 30_000,
      maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    });
  });

  it("defaults the port to 110 for STLS and plaintext", async () => {
    const config = await parseConfig({ mailboxes: [{ ...mailbox, tls: "starttls" }] });
    expect(config.mailboxes[0]?.port).toBe(110);
  });

  it("accepts the s3 and sqs backends and the afterDays delete policy", async () => {
    const config = await parseConfig({
      storage: { type: "s3", bucket: "b", prefix: "mail/", region: "eu-west-1" },
      queue: {
        type: "sqs",
        queueUrl: "https://sqs.eu-west-1.amazonaws.com/1/q",
        maxMessageBytes: 262_144,
      },
      mailboxes: [{ ...mailbox, delete: { afterDays: 7 } }],
    });
    expect(config.storage).toMatchObject({ type: "s3", bucket: "b", prefix: "mail/" });
    expect(config.queue).toMatchObject({ type: "sqs", maxMessageBytes: 262_144 });
    expect(config.mailboxes[0]?.delete).toEqual({ afterDays: 7 });
  });

  it.each([
    [{ mailboxes: [] }, "mailboxes"],
    [{ mailboxes: [{ ...mailbox, id: "../etc" }] }, "mailboxes[0].id"],
    // Both match [A-Za-z0-9._-]+ but name directories when used as a path segment.
    [{ mailboxes: [{ ...mailbox, id: "." }] }, "mailboxes[0].id"],
    [{ mailboxes: [mailbox, { ...mailbox, id: ".." }] }, "mailboxes[1].id"],
    [{ mailboxes: [{ ...mailbox, port: 70000 }] }, "mailboxes[0].port"],
    [{ mailboxes: [{ ...mailbox, tls: "ssl" }] }, "mailboxes[0].tls"],
    [{ mailboxes: [{ ...mailbox, auth: "kerberos" }] }, "mailboxes[0].auth"],
    [{ mailboxes: [{ ...mailbox, delete: "sometimes" }] }, "mailboxes[0].delete"],
    [{ mailboxes: [{ ...mailbox, password: { vault: "x" } }] }, "mailboxes[0].password"],
    [{ mailboxes: [{ ...mailbox, pasword: "typo" }] }, "mailboxes[0].pasword"],
    [{ mailboxes: [mailbox, mailbox] }, "mailboxes[1].id"],
    [{ storage: { type: "s3" }, mailboxes: [mailbox] }, "storage.bucket"],
    [
      { storage: { type: "s3", bucket: "b", prefix: "../x" }, mailboxes: [mailbox] },
      "storage.prefix",
    ],
    [{ queue: { type: "sqs", queueUrl: "not-a-url" }, mailboxes: [mailbox] }, "queue.queueUrl"],
    [
      {
        queue: {
          type: "sqs",
          queueUrl: "https://sqs.eu-west-1.amazonaws.com/1/q",
          maxMessageBytes: 2_000_000,
        },
        mailboxes: [mailbox],
      },
      "queue.maxMessageBytes",
    ],
  ])("rejects %j naming the field %s", async (json, field) => {
    expect(await fieldOf(json)).toBe(field);
  });

  it("reports invalid JSON in a file with the file name", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mi-config-"));
    const file = path.join(dir, "bad.json");
    await writeFile(file, "{ not json");
    await expect(loadConfigFile(file)).rejects.toThrow(/bad\.json is not valid JSON/);
  });

  it("gives the line and column of a JSON syntax error and never quotes the config", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mi-config-"));
    const file = path.join(dir, "pw.json");
    // An unquoted password: Node's parser message would quote `"password":Hunter2`.
    await writeFile(file, '{\n  "mailboxes": [\n    {"id": "a", "password":Hunter2}\n  ]\n}\n');
    const err: unknown = await loadConfigFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `config: (file): ${file} is not valid JSON: line 3, column 28`,
    );
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain("Hunter2");
  });
});
