/**
 * The project's own POP3 server: real TCP on loopback, serving maildrops held in memory. The
 * demo (`mail-ingest demo`), the benchmark and the pipeline tests run against it, and its fault
 * modes produce the failures a real server only produces by accident.
 *
 * Protocol: RFC 1939 (USER/PASS, APOP, STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP, QUIT),
 * RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 5034 (AUTH PLAIN, plus LOGIN and CRAM-MD5),
 * RFC 2595 (STLS) and RFC 8314 implicit TLS. Message bytes are sent exactly as stored (they
 * should use CRLF line endings), dot-stuffed on the fly with backpressure.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { ErrorCode, MailIngestError } from "../errors.ts";

export interface TestMessage {
  /** RFC 1939 §7 unique-id; default: derived from the message's sha256. */
  uidl?: string;
  data: Uint8Array;
}

export interface Pop3TestServerFaults {
  /** Destroys the connection after this many bytes of a RETR body (after the +OK line). */
  cutRetrAfterBytes?: number;
  /** Answers RETR with +OK and then never sends the body. */
  stallOnRetr?: boolean;
  /** Paces RETR bodies to about this many bytes per second: a slow or distant server. */
  retrBytesPerSecond?: number;
  /** Every login fails with `-ERR [IN-USE]` (RFC 2449 §8.1.2), as if another client held the lock. */
  inUse?: boolean;
  /** UIDL reports message 1's unique-id for message 2 too (a broken server, RFC 1939 §7 violated). */
  duplicateUidl?: boolean;
  /** LIST and STAT report each size one octet too large. */
  reportWrongSize?: boolean;
  /** RETR of a message with one of these unique-ids always answers -ERR (a server that cannot read it). */
  refuseRetrUidls?: readonly string[];
}

export interface Pop3TestServerOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 0 (ephemeral) */
  port?: number;
  users: Record<string, { password: string; messages: TestMessage[] }>;
  /** Advertise PIPELINING (RFC 2449 §6.6). Commands are always processed in order regardless. @default true */
  pipelining?: boolean;
  /** SASL mechanisms offered; PLAIN, LOGIN and CRAM-MD5 are implemented. @default ["PLAIN"] */
  sasl?: string[];
  /** Put an APOP timestamp in the greeting (RFC 1939 §7). @default true */
  apop?: boolean;
  tls?: { key: string | Buffer; cert: string | Buffer; mode: "implicit" | "starttls" };
  faults?: Pop3TestServerFaults;
}

export interface Pop3TestServer {
  host: string;
  port: number;
  addMessages(user: string, messages: TestMessage[]): void;
  /** The current maildrop, after committed deletes. */
  messages(user: string): TestMessage[];
  /** Sessions (connections) served so far. */
  readonly sessions: number;
  close(): Promise<void>;
}

/** RFC 2449 §4 caps a command at 255 octets; SASL responses may be longer, so allow more. */
const MAX_LINE_BYTES = 8 * 1024;
/** Bytes of message data handed to socket.write() at once. */
const WRITE_CHUNK_BYTES = 64 * 1024;
const CRLF = Buffer.from("\r\n");
const DOT = Buffer.from(".");
const TERMINATOR = Buffer.from(".\r\n");
const IMPLEMENTED_SASL = new Set(["PLAIN", "LOGIN", "CRAM-MD5"]);

interface StoredMessage {
  readonly uidl: string;
  readonly data: Buffer;
}

interface Maildrop {
  readonly password: string;
  messages: StoredMessage[];
  /** Unique-ids ever assigned here, so a default id never collides with an existing one. */
  readonly uidls: Set<string>;
  /** True while a session is in the TRANSACTION state (RFC 1939 §8: exclusive-access lock). */
  locked: boolean;
}

function toStored(maildrop: Maildrop, message: TestMessage): StoredMessage {
  const data = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
  let uidl = message.uidl;
  if (uidl === undefined) {
    const base = createHash("sha256").update(data).digest("hex").slice(0, 32);
    uidl = base;
    for (let n = 2; maildrop.uidls.has(uidl); n++) uidl = `${base}-${n}`;
  }
  if (!/^[\x21-\x7e]{1,70}$/.test(uidl)) {
    throw new MailIngestError(ErrorCode.INVALID_ARGUMENT, "UIDL must be 1-70 printable characters");
  }
  maildrop.uidls.add(uidl);
  return { uidl, data };
}

/**
 * Yields the message as it goes on the wire: every line that starts with "." gets one more
 * (RFC 1939 §3 byte-stuffing), in slices of the stored Buffer, never a copy of the message.
 * A line starts at offset 0 and after every LF.
 */
function* stuffed(data: Buffer): Generator<Buffer> {
  let from = 0;
  let lineStart = 0;
  while (lineStart < data.length) {
    if (data[lineStart] === 0x2e) {
      yield* slices(data, from, lineStart);
      yield DOT;
      from = lineStart;
    }
    const lf = data.indexOf(0x0a, lineStart);
    if (lf < 0) break;
    lineStart = lf + 1;
  }
  yield* slices(data, from, data.length);
}

function* slices(data: Buffer, from: number, to: number): Generator<Buffer> {
  for (let at = from; at < to; at += WRITE_CHUNK_BYTES) {
    yield data.subarray(at, Math.min(to, at + WRITE_CHUNK_BYTES));
  }
}

/** TOP's view (RFC 1939 §7): the header, the blank line, then at most `lines` body lines. */
function topBytes(data: Buffer, lines: number): Buffer {
  let end = data.indexOf("\r\n\r\n");
  let separator = 4;
  if (end < 0) {
    end = data.indexOf("\n\n");
    separator = 2;
  }
  if (end < 0) return data;
  let cut = end + separator;
  for (let n = 0; n < lines && cut < data.length; n++) {
    const lf = data.indexOf(0x0a, cut);
    cut = lf < 0 ? data.length : lf + 1;
  }
  return data.subarray(0, cut);
}

type State = "AUTHORIZATION" | "TRANSACTION" | "CLOSED";

type SaslStep = (line: string) => Promise<void> | void;

class Session {
  /** The live socket; replaced by the TLS socket after STLS. */
  socket: net.Socket;
  /** Received bytes not yet consumed as lines. */
  private input: Buffer = Buffer.alloc(0);
  /** True while a command is being handled; later pipelined lines wait in `input`. */
  private busy = false;
  private state: State = "AUTHORIZATION";
  /** Name given by USER, waiting for PASS. */
  private pendingUser: string | undefined;
  /** The next expected SASL client response (RFC 5034 §4), if an AUTH exchange is running. */
  private saslStep: SaslStep | undefined;
  /** APOP / CRAM-MD5 challenge from the greeting. */
  private readonly timestamp: string;
  private secure: boolean;
  /** The logged-in maildrop and its snapshot for this session (RFC 1939 §5 numbering). */
  private maildrop: Maildrop | undefined;
  private snapshot: StoredMessage[] = [];
  /** Message numbers (1-based) marked by DELE, applied only in the UPDATE state. */
  private readonly deleted = new Set<number>();

  constructor(
    socket: net.Socket,
    private readonly server: ServerState,
  ) {
    this.socket = socket;
    this.secure = socket instanceof tls.TLSSocket;
    this.timestamp = `<${process.pid}.${randomBytes(8).toString("hex")}@mail-ingest.test>`;
    this.attach(socket);
    const apop = server.options.apop ?? true;
    this.reply(`+OK mail-ingest test POP3 server ready${apop ? ` ${this.timestamp}` : ""}`);
  }

  private attach(socket: net.Socket): void {
    socket.on("data", (chunk: Buffer) => {
      this.input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
      this.pump();
    });
    socket.on("error", () => {});
    socket.on("close", () => this.end());
  }

  /** Connection gone without QUIT: RFC 1939 §6 says no UPDATE, so DELE marks are dropped. */
  private end(): void {
    if (this.state === "TRANSACTION" && this.maildrop) this.maildrop.locked = false;
    this.state = "CLOSED";
    this.server.live.delete(this);
  }

  private pump(): void {
    if (this.busy) return;
    this.busy = true;
    void (async () => {
      try {
        while (this.state !== "CLOSED") {
          const lf = this.input.indexOf(0x0a);
          if (lf < 0) {
            if (this.input.length > MAX_LINE_BYTES) {
              this.reply("-ERR line too long");
              this.socket.destroy();
            }
            break;
          }
          const end = lf > 0 && this.input[lf - 1] === 0x0d ? lf - 1 : lf;
          const line = this.input.subarray(0, end).toString("latin1");
          this.input = this.input.subarray(lf + 1);
          await this.handle(line);
        }
      } catch {
        this.socket.destroy();
      } finally {
        this.busy = false;
      }
    })();
  }

  private reply(line: string): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(`${line}\r\n`, "latin1");
  }

  /** Writes with backpressure; false when the socket closed first. */
  private async write(chunk: Buffer): Promise<boolean> {
    const socket = this.socket;
    if (socket.destroyed) return false;
    if (socket.write(chunk)) return true;
    await Promise.race([once(socket, "drain"), once(socket, "close")]);
    return !socket.destroyed;
  }

  private async handle(line: string): Promise<void> {
    if (this.saslStep) {
      const step = this.saslStep;
      this.saslStep = undefined;
      if (line === "*") {
        this.reply("-ERR AUTH cancelled");
        return;
      }
      await step(line);
      return;
    }
    const space = line.indexOf(" ");
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const args = space < 0 ? [] : line.slice(space + 1).split(" ");
    if (verb === "CAPA") return this.capa();
    if (verb === "QUIT") return this.quit();
    if (verb === "NOOP" && this.state === "TRANSACTION") {
      this.reply("+OK");
      return;
    }
    if (this.state === "AUTHORIZATION") return this.authorization(verb, args);
    return this.transaction(verb, args);
  }

  private capa(): void {
    const { options } = this.server;
    const lines = ["+OK Capability list follows", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE"];
    if (options.pipelining ?? true) lines.push("PIPELINING");
    if (this.state === "AUTHORIZATION") {
      lines.push("USER");
      const sasl = this.server.sasl;
      if (sasl.length > 0) lines.push(`SASL ${sasl.join(" ")}`);
      if (options.tls?.mode === "starttls" && !this.secure) lines.push("STLS");
    }
    lines.push("IMPLEMENTATION mail-ingest-test", ".");
    this.reply(lines.join("\r\n"));
  }

  private quit(): void {
    if (this.state === "TRANSACTION" && this.maildrop) {
      // RFC 1939 §6: the UPDATE state removes the marked messages, then releases the lock.
      const gone = new Set([...this.deleted].map((n) => this.snapshot[n - 1]));
      this.maildrop.messages = this.maildrop.messages.filter((m) => !gone.has(m));
      this.maildrop.locked = false;
    }
    this.state = "CLOSED";
    this.reply("+OK bye");
    this.socket.end();
  }

  private async authorization(verb: string, args: string[]): Promise<void> {
    switch (verb) {
      case "STLS":
        return this.stls();
      case "USER":
        if (args.length !== 1 || !args[0]) {
          this.reply("-ERR usage: USER name");
          return;
        }
        this.pendingUser = args[0];
        this.reply("+OK");
        return;
      case "PASS": {
        const user = this.pendingUser;
        this.pendingUser = undefined;
        if (user === undefined) {
          this.reply("-ERR USER first");
          return;
        }
        // RFC 1939 §7: the password is the rest of the line and may contain spaces.
        const password = args.join(" ");
        return this.login(user, (drop) => drop.password === password);
      }
      case "APOP": {
        const [user, digest] = args;
        if (!(this.server.options.apop ?? true) || !user || !digest) {
          this.reply("-ERR APOP not available");
          return;
        }
        return this.login(
          user,
          (drop) =>
            createHash("md5")
              .update(this.timestamp + drop.password)
              .digest("hex") === digest.toLowerCase(),
        );
      }
      case "AUTH":
        return this.auth(args);
      default:
        this.reply("-ERR command not valid in AUTHORIZATION state");
    }
  }

  private async stls(): Promise<void> {
    const tlsOptions = this.server.options.tls;
    if (tlsOptions?.mode !== "starttls" || this.secure) {
      this.reply("-ERR STLS not available");
      return;
    }
    this.reply("+OK begin TLS negotiation");
    // RFC 2595 §3 / RFC 3207 §6: anything pipelined after STLS arrived in plaintext and must
    // not be acted on once the connection is secure.
    this.input = Buffer.alloc(0);
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    const secure = new tls.TLSSocket(plain, {
      isServer: true,
      secureContext: tls.createSecureContext({ key: tlsOptions.key, cert: tlsOptions.cert }),
    });
    this.socket = secure;
    this.attach(secure);
    await Promise.race([once(secure, "secure"), once(secure, "close")]);
    this.secure = !secure.destroyed;
  }

  private async auth(args: string[]): Promise<void> {
    const mechanism = (args[0] ?? "").toUpperCase();
    const initial = args[1];
    if (!this.server.sasl.includes(mechanism)) {
      this.reply("-ERR unsupported SASL mechanism");
      return;
    }
    const decode = (line: string) => Buffer.from(line === "=" ? "" : line, "base64");
    if (mechanism === "PLAIN") {
      // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
      const finish = (line: string) => {
        const [, user, password] = decode(line).toString("utf8").split("\0");
        return this.login(user ?? "", (drop) => drop.password === password);
      };
      if (initial !== undefined) return finish(initial);
      this.saslStep = finish;
      this.reply("+ ");
      return;
    }
    if (mechanism === "LOGIN") {
      const askPassword = (user: string) => {
        this.saslStep = (line) => {
          const password = decode(line).toString("utf8");
          return this.login(user, (drop) => drop.password === password);
        };
        this.reply(`+ ${Buffer.from("Password:").toString("base64")}`);
      };
      if (initial !== undefined) {
        askPassword(decode(initial).toString("utf8"));
        return;
      }
      this.saslStep = (line) => askPassword(decode(line).toString("utf8"));
      this.reply(`+ ${Buffer.from("Username:").toString("base64")}`);
      return;
    }
    // CRAM-MD5, RFC 2195: "user hex(HMAC-MD5(password, challenge))".
    const challenge = this.timestamp;
    this.saslStep = (line) => {
      const [user, digest] = decode(line).toString("utf8").split(" ");
      return this.login(
        user ?? "",
        (drop) => createHmac("md5", drop.password).update(challenge).digest("hex") === digest,
      );
    };
    this.reply(`+ ${Buffer.from(challenge).toString("base64")}`);
  }

  private login(user: string, verify: (drop: Maildrop) => boolean): void {
    const drop = this.server.maildrops.get(user);
    if (!drop || !verify(drop)) {
      this.reply("-ERR [AUTH] invalid credentials");
      return;
    }
    if (drop.locked || this.server.options.faults?.inUse) {
      this.reply("-ERR [IN-USE] maildrop already locked");
      return;
    }
    drop.locked = true;
    this.maildrop = drop;
    this.snapshot = [...drop.messages];
    this.state = "TRANSACTION";
    this.reply(`+OK maildrop has ${this.snapshot.length} messages`);
  }

  /** The message numbered `arg`, or undefined after replying -ERR. */
  private message(arg: string | undefined): StoredMessage | undefined {
    const n = arg !== undefined && /^\d{1,9}$/.test(arg) ? Number(arg) : 0;
    const message = this.snapshot[n - 1];
    if (n < 1 || !message || this.deleted.has(n)) {
      this.reply(n >= 1 && this.deleted.has(n) ? "-ERR message deleted" : "-ERR no such message");
      return undefined;
    }
    return message;
  }

  private listedSize(n: number): number {
    const size = this.snapshot[n - 1]?.data.length ?? 0;
    return size + (this.server.options.faults?.reportWrongSize ? 1 : 0);
  }

  private listedUidl(n: number): string {
    const faults = this.server.options.faults;
    const message = faults?.duplicateUidl && n === 2 ? this.snapshot[0] : this.snapshot[n - 1];
    return message?.uidl ?? "";
  }

  private live(): number[] {
    const numbers: number[] = [];
    for (let n = 1; n <= this.snapshot.length; n++) if (!this.deleted.has(n)) numbers.push(n);
    return numbers;
  }

  private async transaction(verb: string, args: string[]): Promise<void> {
    switch (verb) {
      case "STAT": {
        const live = this.live();
        const size = live.reduce((sum, n) => sum + this.listedSize(n), 0);
        this.reply(`+OK ${live.length} ${size}`);
        return;
      }
      case "LIST":
      case "UIDL": {
        const describe = (n: number) =>
          verb === "LIST" ? `${n} ${this.listedSize(n)}` : `${n} ${this.listedUidl(n)}`;
        if (args.length > 0) {
          if (this.message(args[0])) this.reply(`+OK ${describe(Number(args[0]))}`);
          return;
        }
        const lines = ["+OK", ...this.live().map(describe), "."];
        this.reply(lines.join("\r\n"));
        return;
      }
      case "RETR": {
        const message = this.message(args[0]);
        if (!message) return;
        if (this.server.options.faults?.refuseRetrUidls?.includes(message.uidl)) {
          this.reply("-ERR message is unreadable");
          return;
        }
        this.reply(`+OK ${message.data.length} octets`);
        if (this.server.options.faults?.stallOnRetr) {
          // Never answer: the session stays busy until the client gives up.
          await once(this.socket, "close");
          return;
        }
        const { cutRetrAfterBytes, retrBytesPerSecond } = this.server.options.faults ?? {};
        return this.sendBody(message.data, cutRetrAfterBytes, retrBytesPerSecond);
      }
      case "TOP": {
        const message = this.message(args[0]);
        if (!message) return;
        const lines = args[1] !== undefined && /^\d{1,9}$/.test(args[1]) ? Number(args[1]) : -1;
        if (lines < 0) {
          this.reply("-ERR usage: TOP msg n");
          return;
        }
        this.reply("+OK");
        return this.sendBody(topBytes(message.data, lines), undefined);
      }
      case "DELE": {
        if (!this.message(args[0])) return;
        this.deleted.add(Number(args[0]));
        this.reply("+OK marked for deletion");
        return;
      }
      case "RSET":
        this.deleted.clear();
        this.reply(`+OK maildrop has ${this.snapshot.length} messages`);
        return;
      default:
        this.reply("-ERR unknown command");
    }
  }

  /**
   * Streams a dot-stuffed body and the terminator; `cutAfter` destroys the socket mid-body, and
   * `bytesPerSecond` paces the chunks.
   */
  private async sendBody(
    data: Buffer,
    cutAfter: number | undefined,
    bytesPerSecond?: number,
  ): Promise<void> {
    let sent = 0;
    for (const chunk of stuffed(data)) {
      if (bytesPerSecond !== undefined) await sleep((chunk.length / bytesPerSecond) * 1000);
      if (cutAfter !== undefined && sent + chunk.length >= cutAfter) {
        await this.write(chunk.subarray(0, cutAfter - sent));
        this.socket.destroy();
        return;
      }
      if (!(await this.write(chunk))) return;
      sent += chunk.length;
    }
    // RFC 1939 §3: the terminator follows a CRLF; add one only when the message lacks it.
    const endsWithCrlf = data.length >= 2 && data[data.length - 2] === 0x0d && data.at(-1) === 0x0a;
    if (!endsWithCrlf && data.length > 0) await this.write(CRLF);
    await this.write(TERMINATOR);
  }
}

interface ServerState {
  readonly options: Pop3TestServerOptions;
  readonly sasl: string[];
  readonly maildrops: Map<string, Maildrop>;
  readonly live: Set<Session>;
}

export async function startPop3TestServer(options: Pop3TestServerOptions): Promise<Pop3TestServer> {
  const sasl = (options.sasl ?? ["PLAIN"]).map((m) => m.toUpperCase());
  for (const mechanism of sasl) {
    if (!IMPLEMENTED_SASL.has(mechanism)) {
      throw new MailIngestError(ErrorCode.INVALID_ARGUMENT, `SASL ${mechanism} is not implemented`);
    }
  }
  const maildrops = new Map<string, Maildrop>();
  for (const [user, { password, messages }] of Object.entries(options.users)) {
    const drop: Maildrop = { password, messages: [], uidls: new Set(), locked: false };
    drop.messages = messages.map((m) => toStored(drop, m));
    maildrops.set(user, drop);
  }
  const state: ServerState = { options, sasl, maildrops, live: new Set() };
  let sessions = 0;
  const onConnection = (socket: net.Socket) => {
    // Status line, body chunks and terminator go out as separate writes; with Nagle on, each
    // small write after the first waits for the client's delayed ACK (~40 ms per response).
    socket.setNoDelay(true);
    sessions++;
    state.live.add(new Session(socket, state));
  };
  const server =
    options.tls?.mode === "implicit"
      ? tls.createServer({ key: options.tls.key, cert: options.tls.cert }, onConnection)
      : net.createServer(onConnection);
  // A failed implicit-TLS handshake is the client's problem; the server keeps serving.
  server.on("tlsClientError", () => {});

  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port: options.port ?? 0 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  const drop = (user: string): Maildrop => {
    const found = maildrops.get(user);
    if (!found) throw new MailIngestError(ErrorCode.INVALID_ARGUMENT, `unknown test user ${user}`);
    return found;
  };

  return {
    host,
    port,
    addMessages(user, messages) {
      const target = drop(user);
      target.messages.push(...messages.map((m) => toStored(target, m)));
    },
    messages(user) {
      return drop(user).messages.map(({ uidl, data }) => ({ uidl, data }));
    },
    get sessions() {
      return sessions;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of state.live) session.socket.destroy();
      });
    },
  };
}
