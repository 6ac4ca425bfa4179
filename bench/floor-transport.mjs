/**
 * The floor clients' POP3 transport (floor-client.mjs, node-floor-client.mjs): log in, list UIDs,
 * pipeline every RETR (RFC 2449 §6.6 PIPELINING; Dovecot answers commands in order even without
 * advertising it), hand the response bytes to the caller, QUIT. Plain JS with no dependencies, so
 * a floor's start-up cost stays Node's alone.
 *
 * Usage of a client: node CLIENT HOST PORT TLS(none|implicit) CA_FILE|- USER [...]; the password
 * comes from the FLOOR_PASSWORD environment variable so it is not in `ps`.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";

/** RFC 1939 §3: a multi-line response ends with CRLF "." CRLF. */
export const TERMINATOR = Buffer.from("\r\n.\r\n");
/** RETR commands written per batch; large enough that the server never waits for us. */
const WINDOW = 256;

/** Exits the process with `name: message` on stderr. */
export function failWith(name) {
  return (message) => {
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(1);
  };
}

/** The connection arguments every floor client takes first. */
export function connectionArgs(argv) {
  const [host = "127.0.0.1", portText = "110", tlsMode = "none", caFile = "-", user = "", ...rest] =
    argv;
  return { host, port: Number(portText), tlsMode, caFile, user, rest };
}

/**
 * Drains the maildrop. `select(listing)` gets the UIDL listing (`{msg, uidl}` in server order) and
 * returns the entries to fetch, in order (default: all of them). `onRetrData(chunk)` gets every
 * byte of the RETR responses, in order, and returns how many responses ended in that chunk.
 * `beforeQuit()` runs once the last one has, and QUIT waits for it. Resolves with the messages
 * and bytes received once the server closes.
 */
export function drain(
  { host, port, tlsMode, caFile, user },
  { name, onRetrData, beforeQuit, select = (listing) => listing },
) {
  const fail = failWith(name);
  const password = process.env.FLOOR_PASSWORD ?? "";
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

  /** Bytes of an unfinished line while in line mode (greeting, USER, PASS, QUIT). */
  let lineBuffer = Buffer.alloc(0);
  /** Collected UIDL listing while waiting for its terminator. */
  let uidlChunks = [];
  /** "greeting" | "user" | "pass" | "uidl" | "retr" | "quit" */
  let phase = "greeting";
  /** Message numbers to RETR, in order. */
  let wanted = [];
  let completed = 0;
  let sent = 0;
  let bytes = 0;

  function sendMore() {
    const upTo = Math.min(wanted.length, completed + WINDOW * 2);
    if (sent >= upTo) return;
    let commands = "";
    while (sent < upTo) commands += `RETR ${wanted[sent++]}\r\n`;
    socket.write(commands);
  }

  function quit() {
    phase = "quit";
    Promise.resolve(beforeQuit?.()).then(
      () => socket.write("QUIT\r\n"),
      (err) => fail(`before QUIT: ${err.message}`),
    );
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

  return new Promise((resolve) => {
    socket.on("data", (chunk) => {
      bytes += chunk.length;
      if (phase === "retr") {
        completed += onRetrData(chunk);
        if (completed >= wanted.length) quit();
        else sendMore();
        return;
      }
      if (phase === "uidl") {
        uidlChunks.push(chunk);
        const all = Buffer.concat(uidlChunks);
        if (!all.subarray(Math.max(0, all.length - 5)).equals(TERMINATOR)) return;
        const lines = all.toString("latin1").split("\r\n");
        if (!lines[0]?.startsWith("+OK")) fail(`UIDL: ${lines[0]}`);
        // Status line, N listing lines ("msg uidl"), ".", and the empty string after the CRLF.
        const listing = lines.slice(1, -2).map((line) => {
          const space = line.indexOf(" ");
          return { msg: Number(line.slice(0, space)), uidl: line.slice(space + 1) };
        });
        wanted = select(listing).map((entry) => entry.msg);
        uidlChunks = [];
        if (wanted.length === 0) {
          quit();
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
      resolve({ messages: completed, bytes });
    });
  });
}
