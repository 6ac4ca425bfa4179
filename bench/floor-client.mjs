#!/usr/bin/env node
/**
 * The bench's "floor": the least work a POP3 client can do to drain a maildrop. It logs in,
 * lists UIDs, pipelines every RETR (floor-transport.mjs), and throws the bytes away, only counting
 * terminators. Plain JS so it runs without tsx: its start-up cost is Node's alone.
 *
 * Usage: node bench/floor-client.mjs HOST PORT TLS(none|implicit) CA_FILE|- USER
 * The password is read from the FLOOR_PASSWORD environment variable so it is not in `ps`.
 * Prints one JSON line: {"messages": N, "bytes": B}.
 */
import { connectionArgs, drain, TERMINATOR } from "./floor-transport.mjs";

/** Last 4 bytes of the previous chunk, so a terminator split across reads is still seen. */
let tail = Buffer.alloc(0);

function countTerminators(chunk) {
  let found = 0;
  if (tail.length > 0) {
    const seam = Buffer.concat([tail, chunk.subarray(0, TERMINATOR.length - 1)]);
    // Only a terminator straddling the seam can be here: neither side alone holds 5 bytes of it.
    if (seam.indexOf(TERMINATOR) >= 0) found++;
  }
  let at = chunk.indexOf(TERMINATOR);
  while (at >= 0) {
    found++;
    at = chunk.indexOf(TERMINATOR, at + TERMINATOR.length);
  }
  tail = chunk.subarray(Math.max(0, chunk.length - (TERMINATOR.length - 1)));
  return found;
}

const report = await drain(connectionArgs(process.argv.slice(2)), {
  name: "floor-client",
  onRetrData: countTerminators,
});
process.stdout.write(`${JSON.stringify(report)}\n`);
