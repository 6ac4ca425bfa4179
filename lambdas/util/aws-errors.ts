/** Reading AWS SDK errors without depending on the SDK's classes (adapters translate them). */

/** The service's error name (`NoSuchKey`, `PreconditionFailed`, …), or undefined. */
export function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

/** The HTTP status the SDK recorded for a failed call, or undefined. */
export function httpStatus(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null || !("$metadata" in err)) return undefined;
  const meta = err.$metadata;
  if (typeof meta !== "object" || meta === null || !("httpStatusCode" in meta)) return undefined;
  return typeof meta.httpStatusCode === "number" ? meta.httpStatusCode : undefined;
}
