/**
 * RFC 1939 §6: QUIT enters the UPDATE state; the deletions are committed only when the server
 * answers +OK, so this resolves only then (and rejects on -ERR or a lost connection). Either way
 * the session is over afterwards.
 */
import type { Pop3Engine } from "../engine.ts";

export async function quit(engine: Pop3Engine): Promise<void> {
  try {
    await engine.exec("single", "QUIT", "QUIT");
  } finally {
    engine.end();
  }
}
