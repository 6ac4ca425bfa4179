/** RFC 1939 §5 DELE: marks a message; only a successful QUIT removes it. */
import type { Pop3Engine } from "../engine.ts";
import { checkMsg } from "./args.ts";

export async function dele(engine: Pop3Engine, msg: number): Promise<void> {
  await engine.exec("single", "DELE", `DELE ${checkMsg(msg)}`);
}
