/**
 * The POP3 client (RFC 1939, extensions RFC 2449, STLS RFC 2595, AUTH RFC 5034): the public
 * facade. Commands are queued in order by the engine (`engine.ts`); with PIPELINING (RFC 2449
 * §6.6) up to `pipelineWindow` are written ahead of their responses. Each command lives in
 * `commands/`, the login in `auth.ts`. RETR/TOP resolve at +OK with a Readable of the raw,
 * dot-unstuffed bytes.
 */
import type { Readable } from "node:stream";
import { login } from "./auth.ts";
import { commands } from "./commands/index.ts";
import { Pop3Engine } from "./engine.ts";
import type { Capabilities, ListEntry, Pop3Credentials, Pop3Options, UidlEntry } from "./types.ts";

export class Pop3Client {
  /** The connection and session state every command runs on. */
  readonly #engine: Pop3Engine;

  private constructor(engine: Pop3Engine) {
    this.#engine = engine;
  }

  /** Connects, reads the greeting and CAPA, and performs STLS when `tls` is "starttls". */
  static async connect(options: Pop3Options): Promise<Pop3Client> {
    const engine = await Pop3Engine.open(options);
    try {
      await engine.readGreeting();
      await commands.CAPA(engine);
      if ((options.tls ?? "implicit") === "starttls") await commands.STLS(engine);
    } catch (err) {
      engine.close();
      throw err;
    }
    return new Pop3Client(engine);
  }

  /** Current capabilities: re-read after STLS and after login (RFC 2449 §5). */
  get capabilities(): Capabilities {
    return this.#engine.capabilities;
  }

  get greeting(): string {
    return this.#engine.greeting;
  }

  /** The `<…>` timestamp of the greeting, which enables APOP (RFC 1939 §7). */
  get apopTimestamp(): string | undefined {
    return this.#engine.apopTimestamp;
  }

  /** True when the connection is encrypted. */
  get secure(): boolean {
    return this.#engine.secure;
  }

  /** Authenticates; see README for how "auto" picks a mechanism. */
  login(credentials: Pop3Credentials): Promise<void> {
    return login(this.#engine, credentials);
  }

  /** RFC 1939 §5 STAT: message count and maildrop size in octets. */
  stat(): Promise<{ count: number; size: number }> {
    return commands.STAT(this.#engine);
  }

  list(): Promise<ListEntry[]>;
  list(msg: number): Promise<ListEntry>;
  /** RFC 1939 §5 LIST: scan listings ("msg size", extra fields ignored). */
  list(msg?: number): Promise<ListEntry[] | ListEntry> {
    return msg === undefined ? commands.LIST(this.#engine) : commands.LIST(this.#engine, msg);
  }

  uidl(): Promise<UidlEntry[]>;
  uidl(msg: number): Promise<UidlEntry>;
  /** RFC 1939 §7 UIDL: unique-ids verbatim; `isValidUidl` judges them. */
  uidl(msg?: number): Promise<UidlEntry[] | UidlEntry> {
    return msg === undefined ? commands.UIDL(this.#engine) : commands.UIDL(this.#engine, msg);
  }

  /**
   * RFC 1939 §7 RETR. Resolves at +OK; the stream carries the message's raw octets. With
   * `expectedSize` (the LIST size) the stream errors with SIZE_MISMATCH when the count differs.
   * Consume each stream before awaiting a later command: the next response is only read once
   * this body has been read to its terminator.
   */
  retr(msg: number, options?: { expectedSize?: number }): Promise<Readable> {
    return commands.RETR(this.#engine, msg, options);
  }

  /** RFC 1939 §7 TOP: the headers, the blank line and `lines` body lines. */
  top(msg: number, lines: number): Promise<Readable> {
    return commands.TOP(this.#engine, msg, lines);
  }

  /** RFC 1939 §5 DELE: marks a message; only a successful QUIT removes it. */
  dele(msg: number): Promise<void> {
    return commands.DELE(this.#engine, msg);
  }

  /** RFC 1939 §5 RSET: unmarks every deleted message. */
  rset(): Promise<void> {
    return commands.RSET(this.#engine);
  }

  noop(): Promise<void> {
    return commands.NOOP(this.#engine);
  }

  /**
   * RFC 1939 §6: QUIT enters the UPDATE state; the deletions are committed only when the server
   * answers +OK, so this resolves only then (and rejects on -ERR or a lost connection).
   */
  quit(): Promise<void> {
    return commands.QUIT(this.#engine);
  }

  /** Drops the connection without QUIT: RFC 1939 §6, no message marked by DELE is removed. */
  close(): void {
    this.#engine.close();
  }
}
