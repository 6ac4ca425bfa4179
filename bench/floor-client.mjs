#!/usr/bin/env node
/**
 * The bench's "floor": the least work a POP3 client can do to drain a maildrop. It logs in,
 * lists UIDs, pipelines every RETR (RFC 2449 §6.6 PIPELINING; Dovecot answers commands in
 * order even without advertising it), and throws the bytes away, only counting terminators.
 * Plain JS so it runs without tsx: its start-up cost is Node's alone.
 *
 * Usage: node bench/floor-client.mjs HOST PORT TLS(none|implicit) CA_FILE|- USER
 * The password is read from the FLOOR_PASSWORD environment variable so it is not in `ps`.
 * Prints one JSON line: {"messages": N, "bytes": B}.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";

const [host = "127.0.0.1", portText = "110", tlsMode = "none", caFile = "-", user = ""] =
  process.argv.slice(2);
const password = process.env.FLOOR_PASSWORD ?? "";
const port = Number(portText);

/** RFC 1939 §3: a multi-line response ends with CRLF "." CRLF. */
const TERMINATOR = Buffer.from("\r\n.\r\n");
/** RETR commands written per batch; large enough that the server never waits for us. */
const WINDOW = 256;

const socket =
  tlsMode === "implicit"
    ? tls.connect({
        host,
        port,
        servername: net.isIP(host) ? undefined : host,
        ca: caFile === "-" ? undefined : readFileSync(caFile),
      })
    : net.connect({ host, port });
socket.setNoDelay(true);

/** Bytes of an unfinished line while in line mode (greeting, USER, PASS). */
let lineBuffer = Buffer.alloc(0);
/** Collected UIDL listing while waiting for its terminator. */
let uidlChunks = [];
/** "greeting" | "user" | "pass" | "uidl" | "retr" | "quit" */
let phase = "greeting";
let expected = 0;
let completed = 0;
let sent = 0;
let bytes = 0;
/** Last 4 bytes of the previous chunk, so a terminator split across reads is still seen. */
let tail = Buffer.alloc(0);

function fail(message) {
  process.stderr.write(`floor-client: ${message}\n`);
  process.exit(1);
}

function sendMore() {
  const upTo = Math.min(expected, completed + WINDOW * 2);
  if (sent >= upTo) return;
  let commands = "";
  while (sent < upTo) commands += `RETR ${++sent}\r\n`;
  socket.write(commands);
}

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

function onLine(line) {
  if (!line.startsWith("+OK")) fail(`${phase}: ${line.slice(0, 80)}`);
  if (phase === "greeting") {
    phase = "user";
    socket.write(`USER ${user}\r\n`);
  } else if (phase === "user") {
    phase = "pass";
    socket.write(`PASS ${password}\r\n`);
  } else if (phase === "pass") {
    phase = "uidl";
    socket.write("UIDL\r\n");
  } else if (phase === "quit") {
    socket.end();
  }
}

socket.on("data", (chunk) => {
  bytes += chunk.length;
  if (phase === "retr") {
    completed += countTerminators(chunk);
    if (completed >= expected) {
      phase = "quit";
      socket.write("QUIT\r\n");
    } else {
      sendMore();
    }
    return;
  }
  if (phase === "uidl") {
    uidlChunks.push(chunk);
    const all = Buffer.concat(uidlChunks);
    if (!all.subarray(Math.max(0, all.length - 5)).equals(TERMINATOR)) return;
    const lines = all.toString("latin1").split("\r\n");
    if (!lines[0]?.startsWith("+OK")) fail(`UIDL: ${lines[0]}`);
    // Status line, N listing lines, ".", and the empty string after the final CRLF.
    expected = lines.length - 3;
    uidlChunks = [];
    if (expected === 0) {
      phase = "quit";
      socket.write("QUIT\r\n");
      return;
    }
    phase = "retr";
    sendMore();
    return;
  }
  lineBuffer = Buffer.concat([lineBuffer, chunk]);
  for (let end = lineBuffer.indexOf("\r\n"); end >= 0; end = lineBuffer.indexOf("\r\n")) {
    const line = lineBuffer.subarray(0, end).toString("latin1");
    lineBuffer = lineBuffer.subarray(end + 2);
    onLine(line);
  }
});
socket.on("error", (err) => fail(err.message));
socket.on("close", () => {
  if (phase !== "quit") fail(`connection closed during ${phase}`);
  process.stdout.write(`${JSON.stringify({ messages: completed, bytes })}\n`);
});
