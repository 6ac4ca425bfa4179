/**
 * The handlers' config loader: the deployed `config.json` (what the MailIngestion construct ships),
 * and the rules that pick exactly one config source.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createConfigLoader, type ReadConfigFile } from "../../../lambdas/config/index.ts";
import { ErrorCode } from "../../../lambdas/errors.ts";

const taskRoot = mkdtempSync(path.join(tmpdir(), "mail-ingest-runtime-"));
afterAll(() => rmSync(taskRoot, { recursive: true, force: true }));

const noParameter = async () => undefined;

function configJson(ids: string[]) {
  return JSON.stringify({
    mailboxes: ids.map((id) => ({
      id,
      host: "pop.example.com",
      username: `${id}@example.com`,
      password: { secretId: `mail-ingest/${id}` },
    })),
  });
}

/** Real reads, counted. */
function countingReader(): { reads: string[]; read: ReadConfigFile } {
  const reads: string[] = [];
  return {
    reads,
    read: (file) => {
      reads.push(file);
      return readFile(file, "utf8");
    },
  };
}

/** A fresh stand-in for the unpacked code package (Lambda's /var/task). */
function taskDir(name: string): string {
  return mkdtempSync(path.join(taskRoot, `${name}-`));
}

describe("config file (MAIL_INGEST_CONFIG_FILE)", () => {
  it("reads the file relative to LAMBDA_TASK_ROOT, validates it and fills in defaults", async () => {
    const root = taskDir("valid");
    writeFileSync(path.join(root, "config.json"), configJson(["support", "billing"]));
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: "config.json", LAMBDA_TASK_ROOT: root },
      noParameter,
    );
    const config = await load();
    expect(config.mailboxes.map((m) => [m.id, m.port, m.password])).toEqual([
      ["support", 995, { secretId: "mail-ingest/support" }],
      ["billing", 995, { secretId: "mail-ingest/billing" }],
    ]);
  });

  it("reads and parses the file once per container, whatever happens to it later", async () => {
    const root = taskDir("cached");
    const file = path.join(root, "config.json");
    writeFileSync(file, configJson(["support"]));
    const { reads, read } = countingReader();
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: "config.json", LAMBDA_TASK_ROOT: root },
      noParameter,
      read,
    );
    const first = await load();
    rmSync(file);
    const second = await load();
    expect(second).toBe(first);
    expect(reads).toEqual([file]);
  });

  it("names the missing file, and reads it again on the next invocation", async () => {
    const root = taskDir("missing");
    const file = path.join(root, "config.json");
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: "config.json", LAMBDA_TASK_ROOT: root },
      noParameter,
    );
    await expect(load()).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: `config file ${file} (MAIL_INGEST_CONFIG_FILE) does not exist`,
    });
    writeFileSync(file, configJson(["late"]));
    expect((await load()).mailboxes.map((m) => m.id)).toEqual(["late"]);
  });

  it("reports a file that is not JSON without quoting its contents", async () => {
    const root = taskDir("not-json");
    writeFileSync(path.join(root, "config.json"), '{"mailboxes": [{"password": "hunter2"');
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: "config.json", LAMBDA_TASK_ROOT: root },
      noParameter,
    );
    const err: unknown = await load().catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: `config file ${path.join(root, "config.json")} is not valid JSON: unexpected end of input at line 1, column 38`,
    });
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain("hunter2");
  });

  it.each([
    ["MAIL_INGEST_CONFIG", "MAIL_INGEST_CONFIG"],
    ["MAIL_INGEST_CONFIG_PARAMETER", "config parameter /mail-ingest/config"],
  ])(
    "gives the line and column of a syntax error in %s, never the parser's quote",
    async (name, what) => {
      // Node's parser message for this text is `Unexpected token 'h', ..."password":hunter2}]}"...`.
      const text = '{"mailboxes": [\n{"id": "a", "password":hunter2}]}';
      const env = { [name]: name === "MAIL_INGEST_CONFIG" ? text : "/mail-ingest/config" };
      const load = createConfigLoader(env, async () => text);
      const err: unknown = await load().catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: ErrorCode.CONFIG_INVALID,
        message: `${what} is not valid JSON: line 2, column 24`,
      });
      expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain("hunter2");
    },
  );

  it("names the file and the invalid field when the schema rejects the config", async () => {
    const root = taskDir("invalid");
    writeFileSync(path.join(root, "config.json"), configJson(["bad id!"]));
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: "config.json", LAMBDA_TASK_ROOT: root },
      noParameter,
    );
    await expect(load()).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: expect.stringMatching(/^\/.*invalid-.*\/config\.json: config: mailboxes\[0\]\.id: /),
    });
  });

  it("uses an absolute path as given", async () => {
    const file = path.join(taskDir("absolute"), "deployed.json");
    writeFileSync(file, configJson(["abs"]));
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: file, LAMBDA_TASK_ROOT: "/nonexistent" },
      noParameter,
    );
    expect((await load()).mailboxes.map((m) => m.id)).toEqual(["abs"]);
  });
});

describe("config source selection", () => {
  it("rejects two config sources instead of silently preferring one", async () => {
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG_FILE: "config.json", MAIL_INGEST_CONFIG: configJson(["inline"]) },
      noParameter,
    );
    await expect(load()).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: expect.stringContaining(
        "set only one of MAIL_INGEST_CONFIG_FILE, MAIL_INGEST_CONFIG",
      ),
    });
  });

  it("names every supported source when none is set", async () => {
    await expect(createConfigLoader({}, noParameter)()).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: expect.stringContaining(
        "MAIL_INGEST_CONFIG_FILE, MAIL_INGEST_CONFIG_PARAMETER, MAIL_INGEST_CONFIG",
      ),
    });
  });

  it("still accepts the inline JSON in MAIL_INGEST_CONFIG, without touching the file system", async () => {
    const { reads, read } = countingReader();
    const load = createConfigLoader(
      { MAIL_INGEST_CONFIG: configJson(["inline"]) },
      noParameter,
      read,
    );
    expect((await load()).mailboxes.map((m) => m.id)).toEqual(["inline"]);
    expect(reads).toEqual([]);
  });
});
