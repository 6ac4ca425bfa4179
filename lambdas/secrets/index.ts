/**
 * The secrets module: where a secret comes from (`source.ts`), what it holds (`parse.ts`), OAuth2
 * tokens (`oauth.ts`) and credentials for a session (`credentials.ts`). The AWS side,
 * `secrets-manager.ts`, is imported directly, so importing this never loads the AWS SDK.
 */
export * from "./credentials.ts";
export * from "./oauth.ts";
export * from "./parse.ts";
export * from "./source.ts";
