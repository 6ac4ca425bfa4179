/** RFC 1939 §5 NOOP: the server just answers +OK. */
import type { Pop3Engine } from "../engine.ts";

export async function noop(engine: Pop3Engine): Promise<void> {
  await engine.exec("single", "NOOP", "NOOP");
}
