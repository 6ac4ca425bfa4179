/**
 * Kept for `infra/` and `lambdas/ingest/`, which import this path while they are being changed on
 * other branches; new code imports `./config/index.ts`.
 */
export * from "./config/index.ts";
