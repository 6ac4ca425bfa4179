/**
 * A deployment of 2,000 mailboxes, synthesized once with real esbuild bundling and the cdk-nag
 * AwsSolutions checks. Guards the regression where the config lived in one SSM parameter and
 * synth failed above ~45 mailboxes, and the IAM policy that would outgrow its 10,240-character
 * limit if every secret were granted by exact ARN.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { CloudAssembly } from "aws-cdk-lib/cx-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MailboxDefinition } from "../../infra/mail-ingestion.ts";
import { buildApp, type MailIngestStack } from "../../infra/stack.ts";
import { parseConfig } from "../../lambdas/config/index.ts";
import { actionsOf, cdkJsonContext, identityStatements } from "./helpers.ts";

const COUNT = 2000;
const mailboxes: MailboxDefinition[] = Array.from({ length: COUNT }, (_, i) => ({
  id: `box-${i}`,
  host: `pop${i % 7}.example.com`,
  username: `user${i}@example.com`,
  password: { secretId: `mail-ingest/box-${i}` },
}));

let outdir: string;
let stack: MailIngestStack;
let template: Template;
let assembly: CloudAssembly;

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), "mail-ingest-scale-"));
  const app = new App({ outdir, context: cdkJsonContext() });
  ({ stack } = buildApp({ mailboxes }, app));
  // Throws (in-memory app mode under vitest) on any unacknowledged AwsSolutions finding.
  assembly = app.synth();
  template = Template.fromStack(stack);
}, 60_000);

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

function codeDir(fn: { node: { defaultChild?: unknown } }): string {
  const id = stack.getLogicalId(fn.node.defaultChild as never);
  const key: string = template.findResources("AWS::Lambda::Function")[id]?.Properties.Code.S3Key;
  return path.join(assembly.directory, `asset.${key.replace(/\.zip$/, "")}`);
}

describe(`a deployment of ${COUNT} mailboxes`, () => {
  it("synthesizes with no SSM parameter and a template that does not grow per mailbox", () => {
    template.resourceCountIs("AWS::SSM::Parameter", 0);
    const text = readFileSync(path.join(assembly.directory, "MailIngest.template.json"), "utf8");
    // No mailbox reaches the template: CloudFormation's 1 MB limit is not the next ceiling.
    expect(text).not.toContain("box-1999");
    expect(text.length).toBeLessThan(100_000);
  });

  it("ships every mailbox in config.json of both code packages, with secret names and no values", async () => {
    for (const fn of [stack.ingestion.dispatcher, stack.ingestion.poller]) {
      const text = readFileSync(path.join(codeDir(fn), "config.json"), "utf8");
      const config = await parseConfig(JSON.parse(text));
      expect(config.mailboxes).toHaveLength(COUNT);
      expect(config.mailboxes[1999]?.password).toEqual({ secretId: "mail-ingest/box-1999" });
      // Only the four fields given plus the delete policy default: nothing resolved, no values.
      expect(Object.keys(JSON.parse(text).mailboxes[0]).sort()).toEqual([
        "delete",
        "host",
        "id",
        "password",
        "username",
      ]);
    }
  });

  it("scopes secret access to the mail-ingest/ name prefix, with the poller policy under IAM's size limit", () => {
    const secretStatements = identityStatements(template).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith("secretsmanager:")),
    );
    expect(secretStatements).toHaveLength(1);
    const [{ statement }] = secretStatements as [(typeof secretStatements)[0]];
    expect(actionsOf(statement).sort()).toEqual([
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
    ]);
    expect(stack.resolve(statement.Resource)).toEqual({
      "Fn::Join": [
        "",
        [
          "arn:",
          { Ref: "AWS::Partition" },
          ":secretsmanager:",
          { Ref: "AWS::Region" },
          ":",
          { Ref: "AWS::AccountId" },
          ":secret:mail-ingest/*",
        ],
      ],
    });
    // IAM counts a role's inline policies together, without whitespace, after resolution;
    // unresolved intrinsics are longer than the ARNs they become, so this over-estimates.
    const role = stack.ingestion.poller.role;
    const policies = identityStatements(template).filter(
      ({ owner }) =>
        owner === stack.getLogicalId(role?.node.defaultChild as never) ||
        owner ===
          stack.getLogicalId(role?.node.findChild("DefaultPolicy").node.defaultChild as never),
    );
    expect(policies.length).toBeGreaterThan(3);
    expect(JSON.stringify(policies.map((p) => p.statement)).length).toBeLessThan(10_240);
  });
});
