/**
 * Deployed mailboxes: validated by the runtime's own {@link parseMailboxes}, so a mailbox that
 * synthesizes is one the handlers accept, plus the rules that only hold in AWS.
 */
import { Token } from "aws-cdk-lib";
import {
  ConfigError,
  type DeletePolicy,
  type MailboxConfig,
  type MailboxInput,
  parseMailboxes,
} from "../lambdas/config/index.ts";

/**
 * Where a deployed mailbox's password lives: a Secrets Manager secret, or an SSM Parameter Store
 * SecureString (standard tier: no monthly charge). Either holds the password, or the OAuth2 JSON
 * `{clientId, clientSecret?, refreshToken, tokenUrl, scope}`.
 */
export type DeployedSecretSource =
  | { readonly secretId: string }
  | { readonly ssmParameter: string };

/**
 * One mailbox as deployed: a mailbox of the CLI config file ({@link MailboxInput}), except that the
 * password must name a secret or a parameter, so its value never enters the template.
 * `delete` defaults to the construct's `defaultDeletePolicy`.
 */
export type MailboxDefinition = Omit<MailboxInput, "password"> & {
  readonly password: DeployedSecretSource;
};

/**
 * Validates deployed mailboxes and returns them parsed. Beyond the runtime schema: a literal, env
 * or file password would land in the template or be unreadable in Lambda, and a CA file path names
 * a file the Lambda cannot read.
 */
export function parseDeployMailboxes(value: unknown): MailboxConfig[] {
  const mailboxes = parseMailboxes(value);
  for (const [i, mailbox] of mailboxes.entries()) {
    const password: unknown = mailbox.password;
    if (
      typeof password !== "object" ||
      password === null ||
      !("secretId" in password || "ssmParameter" in password)
    ) {
      throw new ConfigError(
        `mailboxes[${i}].password`,
        'must be {"secretId": NAME} or {"ssmParameter": NAME} when deployed to AWS',
      );
    }
    if (mailbox.ca !== undefined && !mailbox.ca.includes("-----BEGIN")) {
      throw new ConfigError(`mailboxes[${i}].ca`, "must be an inline PEM when deployed to AWS");
    }
  }
  return mailboxes;
}

/** Narrows external data (a deploy config file) to mailbox definitions, or throws naming the field. */
export function assertDeployMailboxes(
  value: unknown,
): asserts value is readonly MailboxDefinition[] {
  parseDeployMailboxes(value);
}

/**
 * The `config.json` shipped in both code packages: each mailbox with the fields it was given (so
 * the runtime's defaults stay the runtime's), `delete` filled from `defaultDelete`, in the
 * parser's field order, and secret names only.
 */
export function configDocument(
  mailboxes: readonly MailboxDefinition[],
  defaultDelete: DeletePolicy,
): string {
  const parsed = parseDeployMailboxes(mailboxes);
  const document = {
    mailboxes: parsed.map((mailbox, i) => {
      const given: Readonly<Record<string, unknown>> = mailboxes[i] ?? {};
      const fields: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(mailbox)) {
        if (given[key] !== undefined) fields[key] = value;
        else if (key === "delete") fields[key] = defaultDelete;
      }
      return fields;
    }),
  };
  const json = `${JSON.stringify(document, null, 2)}\n`;
  if (Token.isUnresolved(json)) {
    // The file is written at synth time; a deploy-time value would ship as its placeholder.
    throw new ConfigError("mailboxes", "must not contain deploy-time tokens");
  }
  return json;
}
