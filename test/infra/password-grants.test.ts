/**
 * What the poller may read and write for each mailbox's password source: Secrets Manager secrets
 * and SSM Parameter Store SecureStrings (`{"ssmParameter": NAME}`), by exact ARN or, for a fleet,
 * by name prefix. Calls the construct's `grantPermissions` on a bare function, so the IAM rules
 * are checked on their own, whatever source kinds the runtime's config parser accepts.
 */
import { App, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { Key } from "aws-cdk-lib/aws-kms";
import { Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { Queue } from "aws-cdk-lib/aws-sqs";
import { describe, expect, it } from "vitest";
import type { MailboxDefinition } from "../../infra/mail-ingestion.ts";
import { grantPermissions, type PermissionsOptions } from "../../infra/permissions.ts";
import { isMailIngestError } from "../../lambdas/errors.ts";
import { actionsOf, identityStatements, type Statement } from "./helpers.ts";

const ACCOUNT = "123456789012";
const REGION = "eu-west-1";

function grant(mailboxes: MailboxDefinition[], extra: Partial<PermissionsOptions> = {}) {
  const stack = new Stack(new App(), "Grants", { env: { account: ACCOUNT, region: REGION } });
  const fn = (id: string) =>
    new LambdaFunction(stack, id, {
      runtime: Runtime.NODEJS_24_X,
      handler: "index.handler",
      code: Code.fromInline("export const handler = () => {};"),
    });
  const poller = fn("Poller");
  const grants = grantPermissions({
    dispatcher: fn("Dispatcher"),
    poller,
    jobsQueue: new Queue(stack, "Jobs"),
    outputQueue: new Queue(stack, "Output"),
    bucket: new Bucket(stack, "Bucket"),
    mailboxes,
    pollerInVpc: false,
    ...extra,
  });
  const resolve = (statement: Statement) => ({
    actions: actionsOf(statement).sort(),
    resources: [stack.resolve(statement.Resource)].flat(),
    condition: (statement as { Condition?: unknown }).Condition,
  });
  const statements = (prefix: string) =>
    identityStatements(Template.fromStack(stack))
      .map(({ statement }) => statement)
      .filter((s) => actionsOf(s).some((a) => a.startsWith(prefix)))
      .map(resolve);
  return { grants, statements };
}

const box = (id: string, password: MailboxDefinition["password"], auth?: string) =>
  ({
    id,
    host: "pop.example.com",
    username: `${id}@example.com`,
    password,
    ...(auth ? { auth } : {}),
  }) as MailboxDefinition;

/** An ARN as CDK renders it in a stack with a known account and region. */
const arn = (rest: string) => ({ "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, rest]] });
const parameterArn = (name: string) => arn(`:ssm:${REGION}:${ACCOUNT}:parameter/${name}`);
const secretArn = (name: string) => arn(`:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}`);

describe("SSM parameter password sources", () => {
  it("grants GetParameter on exactly each named parameter, and PutParameter only where OAuth2 can rotate", () => {
    const { statements } = grant([
      box("m365", { ssmParameter: "/mail-ingest/m365" }),
      box("gmail", { ssmParameter: "/mail-ingest/gmail" }, "xoauth2"),
      box("plain", { ssmParameter: "/mail-ingest/plain" }, "plain"),
    ]);
    expect(statements("ssm:")).toEqual([
      {
        actions: ["ssm:GetParameter"],
        resources: ["m365", "gmail", "plain"].map((n) => parameterArn(`mail-ingest/${n}`)),
        condition: undefined,
      },
      {
        // "auto" (the default) may find OAuth2 JSON; "plain" never writes back.
        actions: ["ssm:PutParameter"],
        resources: ["m365", "gmail"].map((n) => parameterArn(`mail-ingest/${n}`)),
        condition: undefined,
      },
    ]);
    expect(statements("secretsmanager:")).toEqual([]);
  });

  it("needs no KMS statement for the AWS managed aws/ssm key", () => {
    const { statements } = grant([box("a", { ssmParameter: "/mail-ingest/a" })]);
    expect(statements("kms:")).toEqual([]);
  });

  it("grants Decrypt, and Encrypt for write-back, on a given parameters key through SSM only", () => {
    const keyArn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/0f6c1e8a-1111-2222-3333-444455556666`;
    const ssmKey = (stack: Stack) => Key.fromKeyArn(stack, "SsmKey", keyArn);
    const viaSsm = { StringEquals: { "kms:ViaService": `ssm.${REGION}.amazonaws.com` } };
    const withKey = (auth: string) => {
      const stack = new Stack(new App(), "K", { env: { account: ACCOUNT, region: REGION } });
      const fn = (id: string) =>
        new LambdaFunction(stack, id, {
          runtime: Runtime.NODEJS_24_X,
          handler: "index.handler",
          code: Code.fromInline("export const handler = () => {};"),
        });
      grantPermissions({
        dispatcher: fn("Dispatcher"),
        poller: fn("Poller"),
        jobsQueue: new Queue(stack, "Jobs"),
        outputQueue: new Queue(stack, "Output"),
        bucket: new Bucket(stack, "Bucket"),
        mailboxes: [box("a", { ssmParameter: "/mail-ingest/a" }, auth)],
        ssmParametersKey: ssmKey(stack),
        pollerInVpc: false,
      });
      return identityStatements(Template.fromStack(stack))
        .map(({ statement }) => statement)
        .filter((s) => actionsOf(s).some((a) => a.startsWith("kms:")));
    };
    expect(withKey("xoauth2")).toEqual([
      expect.objectContaining({
        Action: ["kms:Decrypt", "kms:Encrypt"],
        Resource: keyArn,
        Condition: viaSsm,
      }),
    ]);
    expect(withKey("plain")).toEqual([
      expect.objectContaining({ Action: "kms:Decrypt", Resource: keyArn, Condition: viaSsm }),
    ]);
  });

  it("grants a fleet's parameters and secrets by the name prefix, each service on its own ARN pattern", () => {
    const fleet = Array.from({ length: 5000 }, (_, i) =>
      i % 2 === 0
        ? box(`box-${i}`, { ssmParameter: `/mail-ingest/box-${i}` })
        : box(`box-${i}`, { secretId: `mail-ingest/box-${i}` }),
    );
    const { statements, grants } = grant(fleet);
    expect(statements("ssm:")).toEqual([
      {
        actions: ["ssm:GetParameter"],
        resources: [parameterArn("mail-ingest/*")],
        condition: undefined,
      },
      {
        actions: ["ssm:PutParameter"],
        resources: [parameterArn("mail-ingest/*")],
        condition: undefined,
      },
    ]);
    expect(statements("secretsmanager:")).toEqual([
      {
        actions: ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
        resources: [secretArn("mail-ingest/*")],
        condition: undefined,
      },
    ]);
    expect(grants.parameterPrefix?.count).toBe(2500);
    expect(grants.secretPrefix?.count).toBe(2500);
  });

  it("rejects, once grants go by prefix, a parameter outside secretNamePrefix, naming the mailbox", () => {
    const fleet = Array.from({ length: 60 }, (_, i) =>
      box(`box-${i}`, { ssmParameter: `/mail-ingest/box-${i}` }),
    );
    fleet[7] = box("stray", { ssmParameter: "/other/stray" });
    let thrown: unknown;
    try {
      grant(fleet);
    } catch (err) {
      thrown = err;
    }
    expect(isMailIngestError(thrown, "CONFIG_INVALID")).toBe(true);
    expect((thrown as Error).message).toMatch(
      /mailboxes\[7\]\.password\.ssmParameter: must be a parameter name starting with "\/mail-ingest\/"/,
    );
  });
});
