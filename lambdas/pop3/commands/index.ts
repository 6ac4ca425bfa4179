/**
 * Every POP3 command, one file each, registered here by verb (imapflow's `lib/commands.js`).
 * Each is an async function `(engine, ...args)` that writes its line through the engine and
 * parses the response; `Pop3Client` calls them only through this map. A new command is one file
 * plus one line here (and a facade method when it is public).
 */
import { capa } from "./capa.ts";
import { dele } from "./dele.ts";
import { list } from "./list.ts";
import { noop } from "./noop.ts";
import { quit } from "./quit.ts";
import { retr } from "./retr.ts";
import { rset } from "./rset.ts";
import { stat } from "./stat.ts";
import { stls } from "./stls.ts";
import { top } from "./top.ts";
import { uidl } from "./uidl.ts";

export const commands = {
  CAPA: capa,
  STLS: stls,
  STAT: stat,
  LIST: list,
  UIDL: uidl,
  TOP: top,
  RETR: retr,
  DELE: dele,
  RSET: rset,
  NOOP: noop,
  QUIT: quit,
} as const;
