import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../../lambdas/config/index.ts";
import { describeError, ErrorCode } from "../../../lambdas/errors.ts";
import { resolveSecret, writeBackFor } from "../../../lambdas/secrets/index.ts";

const mailbox = {
  id: "support",
  host: "pop.example.com",
  username: "support@example.com",
  password: { env: "SUPPORT_POP_PASSWORD" },
};

describe("resolveSecret", () => {
  it("reads env and file sources, trimming one trailing newline from files", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mi-secret-"));
    await writeFile(path.join(dir, "pw"), "s3cret\n");
    const config = await parseConfig(
      { mailboxes: [{ ...mailbox, password: { file: "pw" } }] },
      dir,
    );
    const source = config.mailboxes[0]?.password;
    expect(await resolveSecret(source ?? "", {})).toBe("s3cret");
    expect(await resolveSecret({ env: "X" }, { env: { X: "from-env" } })).toBe("from-env");
  });

  it("names the variable, never a value, when a secret is missing", async () => {
    const err = await resolveSecret({ env: "NOPE" }, { env: {} }).catch((e) => e);
    expect(err.code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect(err.message).toBe("environment variable NOPE is not set");
  });

  it("names the secret id and the lookup's cause when a secretId fails", async () => {
    const lookup = async () => {
      throw new Error(
        "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
      );
    };
    const err = await resolveSecret({ secretId: "mail/support" }, { secretId: lookup }).catch(
      (e) => e,
    );
    expect(err.code).toBe(ErrorCode.SECRET_UNRESOLVED);
    expect(describeError(err)).toBe(
      "cannot read secret mail/support: ResourceNotFoundException: Secrets Manager can't find the specified secret.",
    );
  });
});

describe("writeBackFor", () => {
  it("is writable for a secretId, an SSM parameter or a file, only with a writer, which it calls with that name", async () => {
    const written: string[] = [];
    const writer = async (id: string, token: string) => {
      written.push(`${id}=${token}`);
    };
    const target = writeBackFor({ secretId: "mail/a" }, writer);
    expect(target.writable).toBe(true);
    if (target.writable) await target.write("rt-2");
    expect(written).toEqual(["mail/a=rt-2"]);
    expect(writeBackFor({ secretId: "mail/a" })).toMatchObject({ writable: false });
    expect(writeBackFor({ env: "PW" }, writer)).toEqual({
      writable: false,
      reason: "an environment variable cannot be written back; update PW",
    });
    // A bare writer is Secrets Manager's: files and SSM need their own.
    expect(writeBackFor({ file: "/etc/pw" }, writer)).toMatchObject({ writable: false });
    expect(writeBackFor({ ssmParameter: "/mail/a" }, writer)).toMatchObject({ writable: false });
    const file = writeBackFor({ file: "/etc/pw" }, { file: writer });
    const ssm = writeBackFor({ ssmParameter: "/mail/a" }, { ssmParameter: writer });
    if (file.writable) await file.write("rt-3");
    if (ssm.writable) await ssm.write("rt-4");
    expect(written).toEqual(["mail/a=rt-2", "/etc/pw=rt-3", "/mail/a=rt-4"]);
    expect(writeBackFor("inline", writer)).toMatchObject({ writable: false });
  });
});
