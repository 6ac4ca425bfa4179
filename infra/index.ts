/**
 * `import … from "mail-ingest/cdk"`: the {@link MailIngestion} construct, its props and the names
 * it shares with the handlers. Public API, semver-stable like the library entry point.
 */
export * from "./mail-ingestion.ts";
