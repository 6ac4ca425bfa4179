/** A plain JSON object: not null and not an array (both are `typeof "object"`). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
