/**
 * The POP3 command engine: the command queue, the PIPELINING window (RFC 2449 §6.6), the idle
 * timer, failure handling and the STLS socket swap (RFC 2595 §4). It knows how each kind of
 * response is framed (RFC 1939 §3), not what any command means: commands live in `commands/`,
 * one file each, and the login in `auth.ts`. The engine also holds the session state those
 * files read and update (capabilities, authenticated), as imapflow's connection object does.
 */
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { TLSSocket } from "node:tls";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { emptyCapabilities } from "./capabilities.ts";
import { openTransport, socketReason, startTls } from "./connection.ts";
import { protocolError, serverError, usageError } from "./errors.ts";
import {
  DEFAULT_PIPELINE_WINDOW,
  DEFAULT_TIMEOUT_MS,
  MAX_LISTING_LINES,
  MAX_PIPELINE_WINDOW,
} from "./limits.ts";
import { ResponseReader } from "./reader.ts";
import type { Capabilities, Pop3Options, TlsMode } from "./types.ts";

/**
 * How a command's response is read: one status line; status plus listing lines; status plus a
 * message body; STLS (stop reading plaintext at +OK); or one raw line (SASL exchange steps).
 */
export type ResponseKind = "single" | "multi" | "body" | "stls" | "raw";

/** What `exec` resolves with for each kind of response. */
export interface ResponseOf {
  /** The status text after "+OK ". */
  single: string;
  /** The listing lines, byte-stuffing undone, without the terminating ".". */
  multi: string[];
  /** The message's raw octets, dot-unstuffed; see {@link ResponseReader.beginBody}. */
  body: Readable;
  /** The status text after "+OK "; the socket is then ready for the handshake. */
  stls: string;
  /** The whole line as received (a SASL continuation, +OK or -ERR). */
  raw: string;
}

export interface ExecOptions {
  /** -ERR without a response code means AUTH_FAILED instead of COMMAND_FAILED. */
  readonly authPhase?: boolean;
  /** The line as shown in the trace, when the real line carries a secret. */
  readonly traceLine?: string;
  /** The LIST size a RETR body must match, in octets. */
  readonly expectedSize?: number | undefined;
}

interface Command {
  /** Verb for error messages; never arguments (they may be secrets). */
  readonly verb: string;
  /** The line to write; undefined for the greeting, which is read without a command. */
  readonly line: string | undefined;
  /** The line as shown in the trace. */
  readonly traceLine: string;
  /** How the response is framed. */
  readonly kind: ResponseKind;
  /** -ERR without a response code means AUTH_FAILED instead of COMMAND_FAILED. */
  readonly authPhase: boolean;
  /** The LIST size a RETR body must match. */
  readonly expectedSize: number | undefined;
  /** Listing lines collected so far; defined once a multi-line +OK arrived. */
  lines: string[] | undefined;
  /** Settles the caller's promise with the response. */
  resolve(value: unknown): void;
  /** Settles the caller's promise with a failure. */
  reject(err: Error): void;
}

const TLS_MODES: readonly TlsMode[] = ["implicit", "starttls", "none"];
const OK = /^\+OK(?:[ \t]|$)/i;
const ERR = /^-ERR(?:[ \t]|$)/i;
const STATUS_PREFIX = /^(?:\+OK|-ERR)[ \t]?/i;

export class Pop3Engine {
  /** Validated options. */
  readonly options: Pop3Options;
  /** Current capabilities; CAPA replaces them (after the greeting, STLS and login). */
  capabilities: Capabilities = emptyCapabilities();
  /** True once the server answered CAPA with +OK; false for a pre-RFC 2449 server. */
  capaSupported = false;
  /** True after a successful login; pipelining is only used from then on. */
  authenticated = false;
  /** The greeting's text after "+OK ". */
  #greeting = "";
  /** The `<…>` timestamp of the greeting, which enables APOP (RFC 1939 §7). */
  #apopTimestamp: string | undefined;
  /** The live socket (plain, or TLS after implicit TLS / STLS). */
  #socket: Socket;
  /** Frames the current socket's bytes; replaced on STLS so pre-handshake bytes are dropped. */
  #reader: ResponseReader;
  /** Commands queued but not yet written. */
  readonly #pending: Command[] = [];
  /** Commands written whose responses are not complete, oldest first. */
  readonly #inFlight: Command[] = [];
  /** Set once the connection is unusable; every later command rejects with it. */
  #fatal: MailIngestError | undefined;
  /** Idle timer armed while waiting on the server. */
  #timer: NodeJS.Timeout | undefined;
  /** True while this turn's writes are held in the socket (see #corkUntilNextTick). */
  #corked = false;
  /** Listener removers per socket, used before the STLS handshake takes the socket over. */
  readonly #detachers = new WeakMap<Socket, () => void>();
  /** The greeting, queued as the first awaited response before any byte can arrive. */
  readonly #greetingReply: Promise<string>;

  private constructor(options: Pop3Options, socket: Socket) {
    this.options = options;
    this.#socket = socket;
    this.#reader = this.#attach(socket);
    this.#greetingReply = this.exec("single", "greeting", undefined);
    // Observed here so a connection lost before readGreeting awaits it is not an unhandled
    // rejection.
    this.#greetingReply.catch(() => {});
  }

  /** Validates the options and opens the transport (TCP, plus the handshake for implicit TLS). */
  static async open(options: Pop3Options): Promise<Pop3Engine> {
    validateOptions(options);
    const socket = await openTransport(options);
    return new Pop3Engine(options, socket);
  }

  /** Waits for the server greeting (RFC 1939 §4) and keeps its APOP timestamp. */
  async readGreeting(): Promise<void> {
    this.#greeting = await this.#greetingReply;
    // RFC 1939 §7: the APOP timestamp is a msg-id in angle brackets somewhere in the greeting.
    this.#apopTimestamp = /<[^<>\s]+>/.exec(this.#greeting)?.[0];
  }

  get greeting(): string {
    return this.#greeting;
  }

  get apopTimestamp(): string | undefined {
    return this.#apopTimestamp;
  }

  /** True when the connection is encrypted. */
  get secure(): boolean {
    return this.#socket instanceof TLSSocket && this.#socket.encrypted;
  }

  /** Throws the fatal error once the connection is unusable. */
  assertOpen(): void {
    if (this.#fatal) throw this.#fatal;
  }

  /**
   * Queues one command line and resolves with its response, read as `kind` says. A `line` of
   * undefined awaits a response without writing (the greeting). -ERR rejects with the mapped
   * {@link serverError}; a broken connection rejects every queued command with the same error.
   */
  exec<K extends ResponseKind>(
    kind: K,
    verb: string,
    line: string | undefined,
    extra: ExecOptions = {},
  ): Promise<ResponseOf[K]> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise<ResponseOf[K]>((resolve, reject) => {
      const command: Command = {
        verb,
        line,
        traceLine: extra.traceLine ?? line ?? "",
        kind,
        authPhase: extra.authPhase ?? false,
        expectedSize: extra.expectedSize,
        lines: undefined,
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      if (line === undefined) {
        this.#inFlight.push(command);
        this.#touch();
      } else {
        this.#pending.push(command);
        this.#pump();
      }
    });
  }

  /**
   * Runs the TLS handshake over the current socket after STLS +OK (RFC 2595 §4). Listeners come
   * off the plain socket first so the handshake owns its bytes.
   */
  async upgrade(): Promise<void> {
    const plainSocket = this.#socket;
    this.#detach(plainSocket);
    let secure: TLSSocket;
    try {
      secure = await startTls(plainSocket, this.options);
    } catch (err) {
      plainSocket.destroy();
      if (err instanceof MailIngestError) this.#fail(err);
      throw err;
    }
    this.#socket = secure;
    // A fresh reader: whatever the old one had buffered after STLS +OK is gone with it.
    this.#reader = this.#attach(secure);
  }

  /** After QUIT (RFC 1939 §6): no later command is accepted, and the socket is ended. */
  end(): void {
    this.#fail(new MailIngestError(ErrorCode.CONNECTION_CLOSED, "POP3 session has ended"));
    this.#socket.end();
  }

  /** Drops the connection without QUIT: RFC 1939 §6, no message marked by DELE is removed. */
  close(): void {
    this.#fail(
      new MailIngestError(ErrorCode.CONNECTION_CLOSED, "POP3 connection closed by the client"),
    );
    this.#socket.destroy();
  }

  /**
   * Writes queued commands while the window allows: 1, or pipelineWindow with PIPELINING.
   * Commands written in one event-loop turn leave in one write: each write is a TLS record, a
   * syscall and a wake-up of the server, and the fetch loop sends its RETRs several at a time
   * (issue 14: one write per RETR was 2–4 % of the main thread in a full drain).
   */
  #pump(): void {
    const window =
      this.authenticated && this.capabilities.pipelining
        ? (this.options.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW)
        : 1;
    while (!this.#fatal && this.#pending.length > 0 && this.#inFlight.length < window) {
      // Only pipelined commands share a write; before login (STLS included) it is one at a time.
      if (window > 1) this.#corkUntilNextTick();
      const command = this.#pending.shift() as Command;
      this.#inFlight.push(command);
      this.#trace("C", command.traceLine);
      this.#socket.write(`${command.line}\r\n`, "utf8");
      // Nothing may follow STLS until the handshake is done (RFC 2595 §4).
      if (command.kind === "stls") break;
    }
    this.#touch();
  }

  /** Holds this turn's writes in the socket and sends them together once the turn ends. */
  #corkUntilNextTick(): void {
    if (this.#corked) return;
    this.#corked = true;
    const socket = this.#socket;
    socket.cork();
    process.nextTick(() => {
      this.#corked = false;
      socket.uncork();
    });
  }

  #attach(socket: Socket): ResponseReader {
    const reader = new ResponseReader({
      onLine: (line) => this.#onLine(line),
      onFatal: (err) => this.#fail(err),
      onBlockedChange: () => this.#touch(),
    });
    const onData = (chunk: Buffer) => {
      this.#touch();
      if (!reader.write(chunk)) socket.pause();
    };
    let ended = false;
    const onEnd = () => {
      if (ended) return;
      ended = true;
      // Let the reader finish what it holds (a body the consumer is still reading) first.
      reader.end(() =>
        this.#fail(
          new MailIngestError(ErrorCode.CONNECTION_CLOSED, "POP3 server closed the connection"),
        ),
      );
    };
    const onError = (err: Error) => {
      this.#fail(
        err instanceof MailIngestError
          ? err
          : new MailIngestError(
              ErrorCode.CONNECTION_CLOSED,
              `POP3 connection lost: ${socketReason(err)}`,
              { cause: err },
            ),
      );
    };
    reader.on("drain", () => socket.resume());
    reader.on("error", onError);
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("close", onEnd);
    socket.on("error", onError);
    this.#detachers.set(socket, () => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onError);
    });
    return reader;
  }

  #detach(socket: Socket): void {
    this.#detachers.get(socket)?.();
    this.#detachers.delete(socket);
  }

  /** One response line, latin1-decoded: one character per octet, so hostile bytes survive. */
  #onLine(line: string): void {
    const head = this.#inFlight[0];
    if (head === undefined) {
      this.#fail(protocolError("response", "server sent a line nobody asked for"));
      return;
    }
    // No #touch() per line: the chunk's arrival re-armed the idle timer (onData), and every
    // response that completes goes through #pump(), which re-arms or clears it. Re-arming it for
    // each of a 3,000-message listing's lines cost an incremental poll ~6,000 timers (issue 14).
    if (head.lines !== undefined) {
      this.#trace("S", line);
      if (line === ".") {
        this.#inFlight.shift();
        head.resolve(head.lines);
        this.#pump();
      } else if (head.lines.length >= MAX_LISTING_LINES) {
        this.#fail(protocolError(head.verb, `more than ${MAX_LISTING_LINES} listing lines`));
      } else {
        // RFC 1939 §3: a line starting with the termination octet is byte-stuffed.
        head.lines.push(line.startsWith(".") ? line.slice(1) : line);
      }
      return;
    }
    this.#trace("S", line);
    if (head.kind === "raw") {
      this.#inFlight.shift();
      head.resolve(line);
      this.#pump();
      return;
    }
    const ok = OK.test(line);
    if (!ok && !ERR.test(line)) {
      // Without a status indicator we cannot know where this response ends: stop here.
      this.#fail(protocolError(head.verb, "response without +OK or -ERR"));
      return;
    }
    const text = line.replace(STATUS_PREFIX, "");
    if (!ok) {
      this.#inFlight.shift();
      head.reject(serverError(head.verb, text, head.authPhase));
      this.#pump();
      return;
    }
    switch (head.kind) {
      case "multi":
        head.lines = [];
        return;
      case "body": {
        const body = this.#reader.beginBody({
          ...(head.expectedSize !== undefined ? { expectedSize: head.expectedSize } : {}),
          onEnd: () => {
            this.#inFlight.shift();
            this.#pump();
          },
        });
        head.resolve(body);
        return;
      }
      case "stls":
        // RFC 2595 §4: after +OK the next octets are TLS; anything else already read is hostile.
        this.#reader.halt();
        this.#inFlight.shift();
        head.resolve(text);
        return;
      default:
        this.#inFlight.shift();
        head.resolve(text);
        this.#pump();
    }
  }

  /** (Re)arms the idle timer while a response is awaited and the reader is not held back. */
  #touch(): void {
    if (this.#fatal || this.#inFlight.length === 0 || this.#reader.blocked) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    // Called for every chunk received: restarting the one timer is cheaper than a new one.
    if (this.#timer !== undefined) {
      this.#timer.refresh();
      return;
    }
    const timeoutMs = this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#timer = setTimeout(() => {
      this.#fail(
        new MailIngestError(
          ErrorCode.TIMEOUT,
          `POP3 server ${this.options.host} sent nothing for ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
    this.#timer.unref();
  }

  /** Makes the connection unusable: rejects everything pending, errors an open body stream. */
  #fail(err: MailIngestError): void {
    if (this.#fatal) return;
    this.#fatal = err;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#reader.failBody(err);
    for (const command of this.#inFlight.splice(0)) command.reject(err);
    for (const command of this.#pending.splice(0)) command.reject(err);
    this.#socket.destroy();
  }

  #trace(direction: "C" | "S", line: string): void {
    const trace = this.options.trace;
    if (trace === undefined) return;
    try {
      trace({ direction, line });
    } catch {
      // A faulty trace sink must not break the protocol state machine.
    }
  }
}

function validateOptions(options: Pop3Options): void {
  if (typeof options.host !== "string" || options.host.length === 0) {
    throw usageError("host is required");
  }
  if (options.tls !== undefined && !TLS_MODES.includes(options.tls)) {
    throw usageError(`tls must be one of ${TLS_MODES.join(", ")}`);
  }
  const window = options.pipelineWindow;
  if (
    window !== undefined &&
    !(Number.isInteger(window) && window >= 1 && window <= MAX_PIPELINE_WINDOW)
  ) {
    throw usageError(`pipelineWindow must be an integer from 1 to ${MAX_PIPELINE_WINDOW}`);
  }
  for (const key of ["timeoutMs", "connectTimeoutMs"] as const) {
    const value = options[key];
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
      throw usageError(`${key} must be a positive number of milliseconds`);
    }
  }
}
