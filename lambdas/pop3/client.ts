/**
 * The POP3 client (RFC 1939, extensions RFC 2449, STLS RFC 2595, AUTH RFC 5034). Commands are
 * queued in order; with PIPELINING (RFC 2449 §6.6) up to `pipelineWindow` are written ahead of
 * their responses. RETR/TOP resolve at +OK with a Readable of the raw, dot-unstuffed bytes.
 */
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { TLSSocket } from "node:tls";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { emptyCapabilities, parseCapabilities } from "./capabilities.ts";
import { defaultPort, openTransport, socketReason, startTls } from "./connection.ts";
import { serverError } from "./errors.ts";
import {
  DEFAULT_PIPELINE_WINDOW,
  DEFAULT_TIMEOUT_MS,
  MAX_LISTING_LINES,
  MAX_PIPELINE_WINDOW,
} from "./limits.ts";
import { ResponseReader } from "./reader.ts";
import {
  apopDigest,
  authenticate,
  cramMd5,
  login,
  oauthBearer,
  plain,
  type SaslMechanism,
  xoauth2,
} from "./sasl.ts";
import type {
  AuthMethod,
  Capabilities,
  ListEntry,
  Pop3Credentials,
  Pop3Options,
  TlsMode,
  UidlEntry,
} from "./types.ts";

/**
 * How a command's response is read: one status line; status plus listing lines; status plus a
 * message body; STLS (stop reading plaintext at +OK); or one raw line (SASL exchange steps).
 */
type Kind = "single" | "multi" | "body" | "stls" | "raw";

interface Command {
  /** Verb for error messages; never arguments (they may be secrets). */
  readonly verb: string;
  /** The line to write; undefined for the greeting, which is read without a command. */
  readonly line: string | undefined;
  /** The line as shown in the trace. */
  readonly traceLine: string;
  readonly kind: Kind;
  /** -ERR without a response code means AUTH_FAILED instead of COMMAND_FAILED. */
  readonly authPhase: boolean;
  /** The LIST size a RETR body must match. */
  readonly expectedSize: number | undefined;
  /** Listing lines collected so far; defined once a multi-line +OK arrived. */
  lines: string[] | undefined;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

const TLS_MODES: readonly TlsMode[] = ["implicit", "starttls", "none"];
const OK = /^\+OK(?:[ \t]|$)/i;
const ERR = /^-ERR(?:[ \t]|$)/i;
const STATUS_PREFIX = /^(?:\+OK|-ERR)[ \t]?/i;

export class Pop3Client {
  /** Validated options. */
  readonly #options: Pop3Options;
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
  /** True after a successful login; pipelining is only used from then on. */
  #authenticated = false;
  #capabilities: Capabilities = emptyCapabilities();
  /** False when the server answered CAPA with -ERR (a pre-RFC 2449 server). */
  #capaSupported = false;
  #greeting = "";
  #apopTimestamp: string | undefined;
  /** Listener removers per socket, used before the STLS handshake takes the socket over. */
  readonly #detachers = new WeakMap<Socket, () => void>();
  /** The greeting, queued as the first awaited response before any byte can arrive. */
  readonly #greetingReply: Promise<string>;

  private constructor(options: Pop3Options, socket: Socket) {
    this.#options = options;
    this.#socket = socket;
    this.#reader = this.#attach(socket);
    this.#greetingReply = this.#enqueue<string>("single", "greeting", undefined);
    // Observed here so a connection lost before #start awaits it is not an unhandled rejection.
    this.#greetingReply.catch(() => {});
  }

  /** Connects, reads the greeting and CAPA, and performs STLS when `tls` is "starttls". */
  static async connect(options: Pop3Options): Promise<Pop3Client> {
    validateOptions(options);
    const socket = await openTransport(options);
    const client = new Pop3Client(options, socket);
    try {
      await client.#start();
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Current capabilities: re-read after STLS and after login (RFC 2449 §5). */
  get capabilities(): Capabilities {
    return this.#capabilities;
  }

  get greeting(): string {
    return this.#greeting;
  }

  /** The `<…>` timestamp of the greeting, which enables APOP (RFC 1939 §7). */
  get apopTimestamp(): string | undefined {
    return this.#apopTimestamp;
  }

  /** True when the connection is encrypted. */
  get secure(): boolean {
    return this.#socket instanceof TLSSocket && this.#socket.encrypted;
  }

  async #start(): Promise<void> {
    this.#greeting = await this.#greetingReply;
    // RFC 1939 §7: the APOP timestamp is a msg-id in angle brackets somewhere in the greeting.
    this.#apopTimestamp = /<[^<>\s]+>/.exec(this.#greeting)?.[0];
    this.#capabilities = (await this.#readCapabilities()) ?? emptyCapabilities();
    if ((this.#options.tls ?? "implicit") !== "starttls") return;
    if (!this.#capabilities.stls) {
      throw new MailIngestError(
        ErrorCode.STARTTLS_UNAVAILABLE,
        `POP3 server ${this.#options.host} does not offer STLS`,
      );
    }
    try {
      await this.#enqueue<string>("stls", "STLS", "STLS");
    } catch (err) {
      if (err instanceof MailIngestError && err.code === ErrorCode.COMMAND_FAILED) {
        throw new MailIngestError(
          ErrorCode.STARTTLS_UNAVAILABLE,
          `POP3 server ${this.#options.host} refused STLS`,
          { cause: err },
        );
      }
      throw err;
    }
    await this.#upgrade();
    // RFC 2595 §4: discard knowledge from the plaintext session and ask again.
    this.#capabilities = (await this.#readCapabilities()) ?? emptyCapabilities();
  }

  async #upgrade(): Promise<void> {
    const plainSocket = this.#socket;
    this.#detach(plainSocket);
    let secure: TLSSocket;
    try {
      secure = await startTls(plainSocket, this.#options);
    } catch (err) {
      plainSocket.destroy();
      if (err instanceof MailIngestError) this.#fail(err);
      throw err;
    }
    this.#socket = secure;
    // A fresh reader: whatever the old one had buffered after STLS +OK is gone with it.
    this.#reader = this.#attach(secure);
  }

  /** CAPA as capabilities, or undefined when the server refuses CAPA (pre-RFC 2449 server). */
  async #readCapabilities(): Promise<Capabilities | undefined> {
    try {
      const lines = await this.#enqueue<string[]>("multi", "CAPA", "CAPA");
      this.#capaSupported = true;
      return parseCapabilities(lines);
    } catch (err) {
      if (err instanceof MailIngestError && err.code === ErrorCode.COMMAND_FAILED) return undefined;
      throw err;
    }
  }

  /** Authenticates; see README for how "auto" picks a mechanism. */
  async login(credentials: Pop3Credentials): Promise<void> {
    this.#assertOpen();
    if (this.#authenticated) {
      throw new MailIngestError(ErrorCode.CONFIG_INVALID, "POP3 session is already authenticated");
    }
    validateCredentials(credentials);
    const method = this.#chooseMethod(credentials);
    // Every method sends a password, a token or a password-derived digest (APOP and CRAM-MD5
    // are MD5, crackable offline), so all of them need TLS unless the caller opts out.
    if (!this.secure && credentials.allowInsecureAuth !== true) {
      throw new MailIngestError(
        ErrorCode.INSECURE_AUTH,
        `POP3 refused to send credentials to ${this.#options.host} without TLS (set allowInsecureAuth to override)`,
      );
    }
    const { username } = credentials;
    const password = credentials.password ?? "";
    const token = credentials.accessToken ?? "";
    switch (method) {
      case "user":
        // RFC 1939 §7 USER/PASS.
        await this.#enqueue("single", "USER", `USER ${username}`, { authPhase: true });
        await this.#enqueue("single", "PASS", `PASS ${password}`, {
          authPhase: true,
          traceLine: "PASS ****",
        });
        break;
      case "apop": {
        const digest = apopDigest(this.#apopTimestamp ?? "", password);
        await this.#enqueue("single", "APOP", `APOP ${username} ${digest}`, {
          authPhase: true,
          traceLine: `APOP ${username} ****`,
        });
        break;
      }
      default:
        await authenticate(
          (line, traceLine) =>
            this.#enqueue<string>("raw", "AUTH", line, { authPhase: true, traceLine }),
          this.#mechanism(method, username, password, token),
        );
    }
    this.#authenticated = true;
    // RFC 2449 §5: capabilities may differ after authentication (e.g. PIPELINING, EXPIRE).
    this.#capabilities = (await this.#readCapabilities()) ?? this.#capabilities;
  }

  #mechanism(method: AuthMethod, username: string, password: string, token: string): SaslMechanism {
    switch (method) {
      case "plain":
        return plain(username, password);
      case "login":
        return login(username, password);
      case "cram-md5":
        return cramMd5(username, password);
      case "xoauth2":
        return xoauth2(username, token);
      default:
        return oauthBearer(username, token, this.#options.host, defaultPort(this.#options));
    }
  }

  #chooseMethod(credentials: Pop3Credentials): Exclude<AuthMethod, "auto"> {
    const requested = credentials.auth ?? "auto";
    const caps = this.#capabilities;
    const hasToken = credentials.accessToken !== undefined;
    const hasPassword = credentials.password !== undefined;
    const unsupported = (why: string) =>
      new MailIngestError(ErrorCode.AUTH_UNSUPPORTED, `POP3 login: ${why}`);
    const missing = (what: string) =>
      new MailIngestError(ErrorCode.INVALID_CREDENTIAL, `POP3 login: ${requested} needs ${what}`);
    if (requested !== "auto") {
      const needsToken = requested === "xoauth2" || requested === "oauthbearer";
      if (needsToken && !hasToken) throw missing("an accessToken");
      if (!needsToken && !hasPassword) throw missing("a password");
      if (requested === "apop" && this.#apopTimestamp === undefined) {
        throw unsupported("APOP needs a timestamp in the server greeting (RFC 1939 §7)");
      }
      return requested;
    }
    const sasl = caps.sasl;
    if (hasToken) {
      if (sasl.includes("XOAUTH2")) return "xoauth2";
      if (sasl.includes("OAUTHBEARER")) return "oauthbearer";
      // No SASL list at all (no CAPA, or CAPA without SASL): XOAUTH2 is the usual provider choice.
      if (sasl.length === 0) return "xoauth2";
      if (!hasPassword) throw unsupported("server offers neither XOAUTH2 nor OAUTHBEARER");
    }
    if (!hasPassword)
      throw new MailIngestError(
        ErrorCode.INVALID_CREDENTIAL,
        "POP3 login: no password or accessToken",
      );
    if (sasl.includes("PLAIN")) return "plain";
    // Without CAPA (RFC 2449 absent) USER is the RFC 1939 baseline, so it is worth trying.
    if (caps.user || !this.#capaSupported) return "user";
    if (this.#apopTimestamp !== undefined) return "apop";
    if (sasl.includes("CRAM-MD5")) return "cram-md5";
    if (sasl.includes("LOGIN")) return "login";
    throw unsupported("no mechanism in common with the server");
  }

  /** RFC 1939 §5 STAT: message count and maildrop size in octets. */
  async stat(): Promise<{ count: number; size: number }> {
    const text = await this.#enqueue<string>("single", "STAT", "STAT");
    const m = /^(\d+)\s+(\d+)/.exec(text);
    if (!m) throw protocolError("STAT", "malformed drop listing");
    return { count: toInt(m[1], "STAT"), size: toInt(m[2], "STAT") };
  }

  list(): Promise<ListEntry[]>;
  list(msg: number): Promise<ListEntry>;
  /** RFC 1939 §5 LIST: scan listings ("msg size", extra fields ignored). */
  async list(msg?: number): Promise<ListEntry[] | ListEntry> {
    if (msg !== undefined) {
      const text = await this.#enqueue<string>("single", "LIST", `LIST ${checkMsg(msg)}`);
      return parseListLine(text);
    }
    const lines = await this.#enqueue<string[]>("multi", "LIST", "LIST");
    return lines.map(parseListLine);
  }

  uidl(): Promise<UidlEntry[]>;
  uidl(msg: number): Promise<UidlEntry>;
  /**
   * RFC 1939 §7 UIDL. Values are returned exactly as sent (latin1-decoded, so every octet maps to
   * one character): out-of-spec values are not rejected here, `isValidUidl` lets callers decide.
   */
  async uidl(msg?: number): Promise<UidlEntry[] | UidlEntry> {
    if (msg !== undefined) {
      const text = await this.#enqueue<string>("single", "UIDL", `UIDL ${checkMsg(msg)}`);
      return parseUidlLine(text);
    }
    const lines = await this.#enqueue<string[]>("multi", "UIDL", "UIDL");
    return lines.map(parseUidlLine);
  }

  /**
   * RFC 1939 §7 RETR. Resolves at +OK; the stream carries the message's raw octets. With
   * `expectedSize` (the LIST size) the stream errors with SIZE_MISMATCH when the count differs.
   * Consume each stream before awaiting a later command: the next response is only read once
   * this body has been read to its terminator.
   */
  retr(msg: number, options?: { expectedSize?: number }): Promise<Readable> {
    const expectedSize = options?.expectedSize;
    if (expectedSize !== undefined && !(Number.isSafeInteger(expectedSize) && expectedSize >= 0)) {
      return Promise.reject(usageError("expectedSize must be a non-negative integer"));
    }
    return this.#enqueueChecked("body", "RETR", () => `RETR ${checkMsg(msg)}`, expectedSize);
  }

  /** RFC 1939 §7 TOP: the headers, the blank line and `lines` body lines. */
  top(msg: number, lines: number): Promise<Readable> {
    return this.#enqueueChecked("body", "TOP", () => {
      if (!Number.isSafeInteger(lines) || lines < 0) {
        throw usageError("TOP line count must be a non-negative integer");
      }
      return `TOP ${checkMsg(msg)} ${lines}`;
    });
  }

  /** RFC 1939 §5 DELE: marks a message; only a successful QUIT removes it. */
  async dele(msg: number): Promise<void> {
    await this.#enqueueChecked("single", "DELE", () => `DELE ${checkMsg(msg)}`);
  }

  /** RFC 1939 §5 RSET: unmarks every deleted message. */
  async rset(): Promise<void> {
    await this.#enqueue("single", "RSET", "RSET");
  }

  async noop(): Promise<void> {
    await this.#enqueue("single", "NOOP", "NOOP");
  }

  /**
   * RFC 1939 §6: QUIT enters the UPDATE state; the deletions are committed only when the server
   * answers +OK, so this resolves only then (and rejects on -ERR or a lost connection).
   */
  async quit(): Promise<void> {
    try {
      await this.#enqueue("single", "QUIT", "QUIT");
    } finally {
      this.#fail(new MailIngestError(ErrorCode.CONNECTION_CLOSED, "POP3 session has ended"));
      this.#socket.end();
    }
  }

  /** Drops the connection without QUIT: RFC 1939 §6, no message marked by DELE is removed. */
  close(): void {
    this.#fail(
      new MailIngestError(ErrorCode.CONNECTION_CLOSED, "POP3 connection closed by the client"),
    );
    this.#socket.destroy();
  }

  #assertOpen(): void {
    if (this.#fatal) throw this.#fatal;
  }

  #enqueueChecked<T>(
    kind: Kind,
    verb: string,
    line: () => string,
    expectedSize?: number,
  ): Promise<T> {
    let text: string;
    try {
      text = line();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue<T>(kind, verb, text, { expectedSize });
  }

  #enqueue<T>(
    kind: Kind,
    verb: string,
    line: string | undefined,
    extra: { authPhase?: boolean; traceLine?: string; expectedSize?: number | undefined } = {},
  ): Promise<T> {
    if (this.#fatal) return Promise.reject(this.#fatal);
    return new Promise<T>((resolve, reject) => {
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

  /** Writes queued commands while the window allows: 1, or pipelineWindow with PIPELINING. */
  #pump(): void {
    const window =
      this.#authenticated && this.#capabilities.pipelining
        ? (this.#options.pipelineWindow ?? DEFAULT_PIPELINE_WINDOW)
        : 1;
    while (!this.#fatal && this.#pending.length > 0 && this.#inFlight.length < window) {
      const command = this.#pending.shift() as Command;
      this.#inFlight.push(command);
      this.#trace("C", command.traceLine);
      this.#socket.write(`${command.line}\r\n`, "utf8");
      // Nothing may follow STLS until the handshake is done (RFC 2595 §4).
      if (command.kind === "stls") break;
    }
    this.#touch();
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

  #onLine(raw: Buffer): void {
    // latin1: one character per octet, so hostile bytes survive unchanged and never merge.
    const line = raw.toString("latin1");
    const head = this.#inFlight[0];
    if (head === undefined) {
      this.#fail(protocolError("response", "server sent a line nobody asked for"));
      return;
    }
    this.#touch();
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
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#fatal || this.#inFlight.length === 0 || this.#reader.blocked) return;
    const timeoutMs = this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#timer = setTimeout(() => {
      this.#fail(
        new MailIngestError(
          ErrorCode.TIMEOUT,
          `POP3 server ${this.#options.host} sent nothing for ${timeoutMs} ms`,
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
    const trace = this.#options.trace;
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

/**
 * CR, LF or NUL in a credential would end the command line early and let the rest be read as a
 * second command (RFC 1939 §3 framing), or truncate a SASL message (RFC 4616 §2 NUL separators).
 */
function validateCredentials(credentials: Pop3Credentials): void {
  const fields: Array<[string, string | undefined]> = [
    ["username", credentials.username],
    ["password", credentials.password],
    ["accessToken", credentials.accessToken],
  ];
  if (typeof credentials.username !== "string" || credentials.username.length === 0) {
    throw new MailIngestError(ErrorCode.INVALID_CREDENTIAL, "POP3 login: username is required");
  }
  for (const [name, value] of fields) {
    if (value !== undefined && /[\r\n\0]/.test(value)) {
      throw new MailIngestError(
        ErrorCode.INVALID_CREDENTIAL,
        `POP3 login: ${name} contains CR, LF or NUL`,
      );
    }
  }
}

function usageError(message: string): MailIngestError {
  return new MailIngestError(ErrorCode.CONFIG_INVALID, `POP3: ${message}`);
}

function protocolError(verb: string, message: string): MailIngestError {
  return new MailIngestError(ErrorCode.PROTOCOL, `POP3 ${verb}: ${message}`);
}

function checkMsg(msg: number): number {
  // RFC 1939 §5: message numbers start at 1.
  if (!Number.isSafeInteger(msg) || msg < 1)
    throw usageError("message number must be a positive integer");
  return msg;
}

function toInt(digits: string | undefined, verb: string): number {
  const value = Number(digits);
  if (!Number.isSafeInteger(value)) throw protocolError(verb, "number out of range");
  return value;
}

function parseListLine(line: string): ListEntry {
  // RFC 1939 §5: "msg SP size", possibly followed by more (ignored).
  const m = /^(\d+) +(\d+)(?:\s|$)/.exec(line);
  if (!m) throw protocolError("LIST", "malformed scan listing");
  return { msg: toInt(m[1], "LIST"), size: toInt(m[2], "LIST") };
}

function parseUidlLine(line: string): UidlEntry {
  // RFC 1939 §7: "msg SP unique-id"; the id is taken verbatim to the end of the line.
  const m = /^(\d+) +(.*)$/s.exec(line);
  if (!m) throw protocolError("UIDL", "malformed unique-id listing");
  return { msg: toInt(m[1], "UIDL"), uidl: m[2] ?? "" };
}
