/** RFC 2595 §4 STLS: switches the connection to TLS before any credential is sent. */
import { ErrorCode, MailIngestError } from "../../errors.ts";
import { emptyCapabilities } from "../capabilities.ts";
import type { Pop3Engine } from "../engine.ts";
import { capa } from "./capa.ts";

export async function stls(engine: Pop3Engine): Promise<void> {
  const host = engine.options.host;
  if (!engine.capabilities.stls) {
    throw new MailIngestError(
      ErrorCode.STARTTLS_UNAVAILABLE,
      `POP3 server ${host} does not offer STLS`,
    );
  }
  try {
    await engine.exec("stls", "STLS", "STLS");
  } catch (err) {
    if (err instanceof MailIngestError && err.code === ErrorCode.COMMAND_FAILED) {
      const message = `POP3 server ${host} refused STLS`;
      throw new MailIngestError(ErrorCode.STARTTLS_UNAVAILABLE, message, { cause: err });
    }
    throw err;
  }
  await engine.upgrade();
  // RFC 2595 §4: discard knowledge from the plaintext session and ask again.
  engine.capabilities = emptyCapabilities();
  await capa(engine);
}
