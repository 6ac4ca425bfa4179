/** RFC 1939 §5 RSET: unmarks every deleted message. */
import type { Pop3Engine } from "../engine.ts";

export async function rset(engine: Pop3Engine): Promise<void> {
  await engine.exec("single", "RSET", "RSET");
}
