/**
 * The CDK app (`cdk.json` runs it with tsx). The deploy config file comes from the `config`
 * context value, else `MAIL_INGEST_CONFIG`, else `infra/example.config.json`.
 */
import { readFileSync } from "node:fs";
import { App } from "aws-cdk-lib";
import { ConfigError } from "../lambdas/config/index.ts";
import { buildApp, parseDeployConfig } from "./stack.ts";

const app = new App();
const contextPath: unknown = app.node.tryGetContext("config");
const file =
  (typeof contextPath === "string" && contextPath) ||
  process.env.MAIL_INGEST_CONFIG ||
  "infra/example.config.json";
let json: unknown;
try {
  json = JSON.parse(readFileSync(file, "utf8"));
} catch (err) {
  throw new ConfigError("(file)", `cannot read ${file}: ${(err as Error).message}`);
}
buildApp(await parseDeployConfig(json), app);
app.synth();
