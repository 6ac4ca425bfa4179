/** Shared fixtures for the infra tests: the cdk.json context, and IAM statement walking. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Template } from "aws-cdk-lib/assertions";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** The feature flags `cdk synth` applies, so in-process apps synthesize the same template. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson: unknown = JSON.parse(readFileSync(`${repoRoot}cdk.json`, "utf8"));
  if (typeof cdkJson !== "object" || cdkJson === null || !("context" in cdkJson)) {
    throw new Error("cdk.json has no context");
  }
  return cdkJson.context as Record<string, unknown>;
}

export interface Statement {
  readonly Effect: string;
  readonly Action?: string | string[];
  readonly NotAction?: unknown;
  readonly Resource?: unknown;
  readonly NotResource?: unknown;
}

/** Every statement of every identity policy: AWS::IAM::Policy documents and role inline policies. */
export function identityStatements(template: Template): { owner: string; statement: Statement }[] {
  const out: { owner: string; statement: Statement }[] = [];
  const documents: { owner: string; document: { Statement: Statement[] } }[] = [];
  for (const [id, policy] of Object.entries(template.findResources("AWS::IAM::Policy"))) {
    documents.push({ owner: id, document: policy.Properties.PolicyDocument });
  }
  for (const [id, role] of Object.entries(template.findResources("AWS::IAM::Role"))) {
    for (const inline of role.Properties.Policies ?? []) {
      documents.push({ owner: id, document: inline.PolicyDocument });
    }
  }
  for (const { owner, document } of documents) {
    for (const statement of document.Statement) out.push({ owner, statement });
  }
  return out;
}

export const actionsOf = (statement: Statement): string[] =>
  statement.Action === undefined
    ? []
    : Array.isArray(statement.Action)
      ? statement.Action
      : [statement.Action];
