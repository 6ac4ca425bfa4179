/** Compiles schema/queue-message.v2.json once for the tests. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";

export const REPO_ROOT = resolve(import.meta.dirname, "../../..");

const schema: unknown = JSON.parse(
  readFileSync(resolve(REPO_ROOT, "schema/queue-message.v2.json"), "utf8"),
);

const ajv = new Ajv2020({ allErrors: true, strict: true });
// RFC 3339 §5.6 date-time; ajv-formats is not a dependency, so the format is defined here.
ajv.addFormat("date-time", /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
if (typeof schema !== "object" || schema === null) throw new Error("schema is not an object");
export const validateQueueBody = ajv.compile(schema);

/** Validation errors as one readable string, for assertion messages. */
export function schemaErrors(): string {
  return ajv.errorsText(validateQueueBody.errors);
}
