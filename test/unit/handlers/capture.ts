/**
 * Captures what Powertools Logger and Metrics print. Both write through a `Console` bound to
 * `process.stdout`/`process.stderr`, which calls `stream.write` at log time, so spying on the
 * streams sees every line exactly as CloudWatch would.
 */
import { vi } from "vitest";

export interface Captured {
  /** Every line written, raw. */
  readonly lines: string[];
  /** Lines that parsed as JSON objects. */
  json(): Record<string, unknown>[];
  /** EMF blobs: JSON lines with an `_aws` key. */
  emf(): Record<string, unknown>[];
  /** Log lines (JSON with a `message` key). */
  logs(): Record<string, unknown>[];
  restore(): void;
}

export function captureOutput(): Captured {
  const lines: string[] = [];
  const record = (chunk: unknown) => {
    const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString();
    for (const line of text.split("\n")) if (line.trim()) lines.push(line);
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(record);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(record);
  const json = () =>
    lines.flatMap((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value === "object" && value !== null && !Array.isArray(value)
          ? [value as Record<string, unknown>]
          : [];
      } catch {
        return [];
      }
    });
  return {
    lines,
    json,
    emf: () => json().filter((o) => "_aws" in o),
    logs: () => json().filter((o) => "message" in o),
    restore() {
      out.mockRestore();
      err.mockRestore();
    },
  };
}

export { lambdaContext } from "../../helpers/lambda.ts";
