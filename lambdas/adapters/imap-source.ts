/**
 * The IMAP adapter of the {@link MailSource} port, on imapflow. One connection reads every
 * configured folder of the mailbox:
 *
 *   connect (implicit TLS, or STARTTLS with the capabilities read again after the upgrade)
 *   → authenticate (LOGIN, AUTHENTICATE PLAIN, XOAUTH2, OAUTHBEARER) → resolve folders
 *   → list: per folder, SELECT, then `UID FETCH n:* (UID RFC822.SIZE)` above the highest UID that
 *     state knows for the folder's UIDVALIDITY, plus a bounded re-check of pending UIDs
 *   → fetch: `BODY.PEEK[]` in partial chunks (imapflow's download), so \Seen never changes and
 *     the next chunk is asked for only once the consumer took the last one (backpressure)
 *   → markDone: the afterIngest action, by UID, at once (STORE, UID MOVE, UID EXPUNGE)
 *   → LOGOUT.
 *
 * A message's key is folder + UIDVALIDITY + UID (ingest/keys.ts), which names it for good
 * (RFC 3501 §2.3.1.1). Commands that need a selected folder hold the source's own lock while
 * they run, and a download holds it until its body ends or is destroyed: imapflow would let a
 * SELECT for another folder slip in between two chunks of one download.
 */
import { finished, type Readable } from "node:stream";
import type { ImapFlow, ImapFlowOptions, ListResponse } from "imapflow";
import type { AfterIngest, MailboxConfig } from "../config/index.ts";
import { describeError, ErrorCode, isMailIngestError, MailIngestError } from "../errors.ts";
import { imapKey, parseImapKey } from "../ingest/keys.ts";
import type { OpenSource, SessionCredentials } from "../ingest/types.ts";
import type {
  MailSource,
  MessageOrigin,
  SourceListing,
  SourceMessage,
  StateEntry,
} from "../ports.ts";
import { imapflow } from "./imapflow-loader.ts";

/**
 * Bytes asked for per `BODY.PEEK[]<offset.length>` FETCH, and so the most of one body held in
 * memory at once. 1 MiB keeps a 340 MB message to ~340 round trips (imapflow's default of 64 KiB
 * would be ~5,400) while staying within the memory bound of the POP3 path.
 */
export const DOWNLOAD_CHUNK_BYTES = 1024 * 1024;
/**
 * Most UID ranges re-checked per folder and poll (gaps below the highest known UID: messages a
 * cap, the deadline or an error left behind), and most pending actions listed. Bounds the
 * command and the answer however old the folder; older leftovers wait for a later poll.
 */
export const MAX_RECHECK = 1000;
/** Idle time on a socket during a session, ms: a slow store may hold a download that long. */
const SOCKET_IDLE_MS = 5 * 60_000;

/** One protocol command sent, as imapflow logs it (credentials masked), for tests and debugging. */
export type ImapTrace = (command: string) => void;

export interface ImapSourceOptions {
  /** Receives every command the client sends, credentials masked. */
  readonly trace?: ImapTrace;
  /** Last-moment changes to imapflow's options (tests: a different transport or chunk size). */
  readonly tweak?: (options: ImapFlowOptions) => ImapFlowOptions;
  /** Bytes per partial FETCH. @default DOWNLOAD_CHUNK_BYTES */
  readonly chunkBytes?: number;
}

/** A configured folder as the server names it. */
export interface ResolvedFolder {
  /** As configured: a name, or a special-use attribute such as `\Junk`. */
  readonly configured: string;
  /** The server's name for it (imapflow decodes modified UTF-7, RFC 3501 §5.1.3). */
  readonly path: string;
  readonly specialUse?: string;
}

/** The IMAP source; `options.trace` sees every command (the incremental-poll tests count them). */
export function imapSource(options: ImapSourceOptions = {}): OpenSource {
  return async (mailbox, credentials) =>
    (await openImapSource(mailbox, credentials, options)).source;
}

/** What `check` reports about an IMAP mailbox; nothing on the server is changed to learn it. */
export interface ImapInspection {
  readonly secure: boolean;
  /** The server's capabilities that matter to the actions (RFC 6851, RFC 4315, RFC 7162). */
  readonly capabilities: Readonly<Record<"MOVE" | "UIDPLUS" | "CONDSTORE", boolean>>;
  /** Every folder the server lists, with its special-use attribute (RFC 6154). */
  readonly folders: readonly { readonly path: string; readonly specialUse?: string }[];
  /** Per configured folder: messages in it, and how many a poll would ingest. */
  readonly configured: readonly (ResolvedFolder & { messages: number; new: number })[];
}

/** Connects, lists as a poll would (no body fetched, no action applied), and logs out. */
export async function inspectImap(
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
  known: ReadonlyMap<string, StateEntry>,
): Promise<ImapInspection> {
  // Read-only: whatever the action, check only looks.
  const { source, client, folders } = await openImapSource(
    { ...mailbox, afterIngest: "none" },
    credentials,
  );
  try {
    const listing = await source.list(known);
    const configured = [];
    for (const folder of folders) {
      const status = await client.status(folder.path, { messages: true });
      configured.push({
        ...folder,
        messages: status ? (status.messages ?? 0) : 0,
        new: listing.messages.filter(
          (m) => !known.has(m.key) && imapOrigin(m).folder === folder.path,
        ).length,
      });
    }
    const listed = await client.list();
    await source.close();
    const caps = client.capabilities;
    return {
      secure: client.secureConnection,
      capabilities: {
        MOVE: caps.has("MOVE"),
        UIDPLUS: caps.has("UIDPLUS"),
        CONDSTORE: caps.has("CONDSTORE"),
      },
      folders: listed.map((f) => ({ path: f.path, specialUse: f.specialUse || undefined })),
      configured,
    };
  } finally {
    client.close();
  }
}

async function openImapSource(
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
  options: ImapSourceOptions = {},
): Promise<{ source: ImapSource; client: ImapFlow; folders: ResolvedFolder[] }> {
  const client = await openImap(mailbox, credentials, options);
  try {
    const folders = resolveFolders(mailbox, await client.list());
    const source = new ImapSource(client, mailbox, folders, options);
    await source.prepare();
    return { source, client, folders };
  } catch (err) {
    client.close();
    throw err;
  }
}

/** imapflow's options for a mailbox: certificate checks on, and no credentials in the clear. */
export function imapOptions(
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
  options: ImapSourceOptions = {},
): ImapFlowOptions {
  if (mailbox.tls === "none" && !mailbox.allowInsecureAuth) {
    throw new MailIngestError(
      ErrorCode.INSECURE_AUTH,
      'refusing to authenticate over a connection without TLS; set "allowInsecureAuth": true to allow it',
    );
  }
  const auth = imapAuth(mailbox, credentials);
  const trace = options.trace;
  const flow: ImapFlowOptions = {
    host: mailbox.host,
    port: mailbox.port,
    secure: mailbox.tls === "implicit",
    // true: STARTTLS is required, and a server that does not offer it fails the connect
    // before any credential is sent (RFC 9051 §6.2.1); false: plaintext, allowed above.
    doSTARTTLS: mailbox.tls === "starttls" ? true : mailbox.tls === "none" ? false : undefined,
    servername: mailbox.servername,
    tls: {
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
      ...(mailbox.ca ? { ca: mailbox.ca } : {}),
      ...(mailbox.servername ? { servername: mailbox.servername } : {}),
    },
    auth,
    connectionTimeout: mailbox.timeoutMs,
    greetingTimeout: mailbox.timeoutMs,
    socketTimeout: Math.max(mailbox.timeoutMs, SOCKET_IDLE_MS),
    disableAutoIdle: true,
    // imapflow's own logger prints to stdout; commands go to `trace` only, already masked.
    logger: {
      debug: (entry: unknown) => {
        if (!trace || !isCommandLog(entry)) return;
        trace(entry.msg.replace(/^\S+ /, ""));
      },
      info: () => {},
      warn: () => {},
      error: () => {},
    },
    emitLogs: false,
  };
  return options.tweak ? options.tweak(flow) : flow;
}

function isCommandLog(entry: unknown): entry is { msg: string } {
  return (
    typeof entry === "object" &&
    entry !== null &&
    (entry as { src?: unknown }).src === "c" &&
    typeof (entry as { msg?: unknown }).msg === "string"
  );
}

function imapAuth(
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
): ImapFlowOptions["auth"] {
  const oauth = mailbox.auth === "xoauth2" || mailbox.auth === "oauthbearer";
  if (credentials.accessToken !== undefined) {
    // imapflow picks OAUTHBEARER (RFC 7628) when the server offers it, else XOAUTH2; a
    // configured mechanism is enforced in openImap() by {@link restrictOAuthMechanism}.
    return { user: mailbox.username, accessToken: credentials.accessToken };
  }
  if (oauth || credentials.password === undefined) {
    throw new MailIngestError(
      ErrorCode.INVALID_CREDENTIAL,
      oauth
        ? `auth ${mailbox.auth} needs an OAuth2 access token, and the secret holds none`
        : "the secret holds no password",
    );
  }
  return {
    user: mailbox.username,
    pass: credentials.password,
    // LOGIN is the IMAP command (RFC 3501 §6.2.3); PLAIN is AUTHENTICATE PLAIN (RFC 4616).
    loginMethod: mailbox.auth === "login" ? "LOGIN" : mailbox.auth === "plain" ? "AUTH=PLAIN" : "",
  };
}

/** Connects and authenticates; every failure becomes a {@link MailIngestError} with a code. */
export async function openImap(
  mailbox: MailboxConfig,
  credentials: SessionCredentials,
  options: ImapSourceOptions = {},
): Promise<ImapFlow> {
  const { ImapFlow } = await imapflow();
  const client = new ImapFlow(imapOptions(mailbox, credentials, options));
  // imapflow emits 'error' for socket failures after connect; the pending command rejects too.
  client.on("error", () => {});
  if (credentials.accessToken !== undefined) enforceOAuthMechanism(client, mailbox.auth);
  try {
    await client.connect();
  } catch (err) {
    client.close();
    throw connectError(err, credentials.accessToken !== undefined);
  }
  return client;
}

/**
 * imapflow has no option naming the OAuth2 mechanism: it sends OAUTHBEARER whenever the server
 * offers it. Its authenticate() runs once the capabilities are final (after STARTTLS, RFC 9051
 * §6.2.1), so wrapping it to narrow that list to the configured mechanism makes the
 * configuration win; the server's post-login CAPABILITY replaces the list anyway.
 */
function enforceOAuthMechanism(client: ImapFlow, auth: MailboxConfig["auth"]): void {
  if (auth !== "xoauth2" && auth !== "oauthbearer") return;
  const internal = client as unknown as { authenticate?: () => Promise<unknown> };
  const authenticate = internal.authenticate;
  if (typeof authenticate !== "function") {
    throw new MailIngestError(
      ErrorCode.SERVER_UNSUPPORTED,
      "this imapflow version cannot be told which OAuth2 mechanism to use",
    );
  }
  internal.authenticate = function (this: ImapFlow) {
    restrictOAuthMechanism(this.capabilities, auth);
    return authenticate.call(this);
  };
}

/**
 * Leaves only the configured OAuth2 mechanism among the server's AUTH= capabilities, or refuses
 * when the server does not offer it (rather than falling back to the other one).
 */
export function restrictOAuthMechanism(
  capabilities: Map<string, unknown>,
  auth: "xoauth2" | "oauthbearer",
): void {
  const wanted = auth === "xoauth2" ? "AUTH=XOAUTH2" : "AUTH=OAUTHBEARER";
  if (!capabilities.has(wanted)) {
    const offered = [...capabilities.keys()].filter((c) => c.startsWith("AUTH=")).join(" ");
    throw new MailIngestError(
      ErrorCode.AUTH_UNSUPPORTED,
      `auth ${auth}: the server does not offer ${wanted} (it offers: ${offered || "none"})`,
    );
  }
  for (const other of ["AUTH=XOAUTH2", "AUTH=XOAUTH", "AUTH=OAUTHBEARER"]) {
    if (other !== wanted) capabilities.delete(other);
  }
}

/** Translates imapflow's connect failures into the project's codes, never echoing a secret. */
export function connectError(err: unknown, oauth: boolean): MailIngestError {
  if (err instanceof MailIngestError) return err;
  const e = (typeof err === "object" && err !== null ? err : {}) as {
    code?: string;
    authenticationFailed?: boolean;
    message?: string;
    response?: string;
  };
  const text = describeError(err);
  if (e.authenticationFailed) {
    return new MailIngestError(
      oauth ? ErrorCode.OAUTH_FAILED : ErrorCode.AUTH_FAILED,
      `authentication failed${e.response ? `: ${e.response}` : ""}`,
      { cause: err },
    );
  }
  if (/STARTTLS/i.test(text)) {
    return new MailIngestError(ErrorCode.STARTTLS_UNAVAILABLE, text, { cause: err });
  }
  if (
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|TLS|SSL/i.test(e.code ?? "") ||
    /certificate|TLS|SSL/i.test(text)
  ) {
    return new MailIngestError(ErrorCode.TLS_FAILED, text, { cause: err });
  }
  if (e.code === "ETIMEDOUT" || e.code === "CONNECT_TIMEOUT" || /timed? ?out/i.test(text)) {
    return new MailIngestError(ErrorCode.CONNECT_TIMEOUT, text, { cause: err });
  }
  if (/^E[A-Z]+$/.test(e.code ?? "")) {
    return new MailIngestError(ErrorCode.CONNECT_FAILED, text, { cause: err });
  }
  if (/Login is disabled|No matching authentication|authentication/i.test(text)) {
    return new MailIngestError(ErrorCode.AUTH_UNSUPPORTED, text, { cause: err });
  }
  return new MailIngestError(ErrorCode.CONNECT_FAILED, text, { cause: err });
}

/**
 * Maps configured folder names to the server's: a special-use attribute (RFC 6154) by the
 * folder carrying it, a name by an exact match (INBOX case-insensitively, RFC 3501 §5.1). A
 * folder that does not exist is an error naming it.
 */
export function resolveFolders(
  mailbox: MailboxConfig,
  listed: readonly ListResponse[],
): ResolvedFolder[] {
  return (mailbox.folders ?? ["INBOX"]).map((name) => {
    const found = findFolder(name, listed);
    if (!found) {
      throw new MailIngestError(
        ErrorCode.FOLDER_NOT_FOUND,
        `folder ${JSON.stringify(name)} does not exist on the server`,
      );
    }
    if (/[\r\n]/.test(found.path)) {
      throw new MailIngestError(
        ErrorCode.SERVER_UNSUPPORTED,
        `folder ${JSON.stringify(found.path)} has a line break in its name`,
      );
    }
    return { configured: name, path: found.path, specialUse: found.specialUse || undefined };
  });
}

function findFolder(name: string, listed: readonly ListResponse[]): ListResponse | undefined {
  if (name.startsWith("\\")) {
    const use = name.toLowerCase();
    return listed.find(
      (f) =>
        f.specialUse?.toLowerCase() === use ||
        [...(f.flags ?? [])].some((flag) => flag.toLowerCase() === use),
    );
  }
  if (name.toUpperCase() === "INBOX") return listed.find((f) => f.path.toUpperCase() === "INBOX");
  return listed.find((f) => f.path === name);
}

type ImapOrigin = Extract<MessageOrigin, { protocol: "imap" }>;

/** State knowledge of one folder: UIDVALIDITY → UID → [key, entry]. */
type FolderKnowledge = Map<number, Map<number, readonly [string, StateEntry]>>;

class ImapSource implements MailSource {
  readonly keepsMarked: boolean;
  private readonly action: AfterIngest;
  /** The tail of the lock chain: commands that need a selected folder run one at a time. */
  private tail: Promise<void> = Promise.resolve();
  /** The folder selected now, and its UIDVALIDITY. */
  private selected: { path: string; uidValidity: number } | undefined;
  /** moveTo's folder as the server names it (resolved in prepare()). */
  private moveTo: string | undefined;

  constructor(
    private readonly client: ImapFlow,
    private readonly mailbox: MailboxConfig,
    private readonly folders: readonly ResolvedFolder[],
    private readonly options: ImapSourceOptions,
  ) {
    this.action = mailbox.afterIngest ?? "none";
    this.keepsMarked = this.action === "markSeen" || isFlag(this.action);
  }

  /**
   * Refuses at connect what the action cannot do safely: `delete`, and moveTo without MOVE,
   * need UID EXPUNGE (UIDPLUS, RFC 4315), since a plain EXPUNGE would also remove other
   * clients' \Deleted messages. Resolves (or, with `create`, creates) the moveTo folder.
   */
  async prepare(): Promise<void> {
    const caps = this.client.capabilities;
    const action = this.action;
    const uidplus = caps.has("UIDPLUS");
    if (action === "delete" && !uidplus) {
      throw new MailIngestError(
        ErrorCode.SERVER_UNSUPPORTED,
        "afterIngest delete needs UIDPLUS (UID EXPUNGE), which the server does not offer; refusing rather than EXPUNGE messages that are not ours",
      );
    }
    if (isMove(action)) {
      if (!caps.has("MOVE") && !uidplus) {
        throw new MailIngestError(
          ErrorCode.SERVER_UNSUPPORTED,
          "afterIngest moveTo needs MOVE or UIDPLUS (UID EXPUNGE), and the server offers neither",
        );
      }
      let found = findFolder(action.moveTo, await this.client.list());
      if (!found && action.create) {
        await this.client.mailboxCreate(action.moveTo);
        found = findFolder(action.moveTo, await this.client.list());
      }
      if (!found) {
        throw new MailIngestError(
          ErrorCode.FOLDER_NOT_FOUND,
          `afterIngest moveTo folder ${JSON.stringify(action.moveTo)} does not exist on the server (set "create": true to create it)`,
        );
      }
      if (this.folders.some((f) => f.path === found.path)) {
        throw new MailIngestError(
          ErrorCode.CONFIG_INVALID,
          `afterIngest moveTo folder ${JSON.stringify(found.path)} is also a folder read: its messages would be ingested again`,
        );
      }
      this.moveTo = found.path;
    }
  }

  async list(known: ReadonlyMap<string, StateEntry>): Promise<SourceListing> {
    const byFolder = new Map<string, FolderKnowledge>();
    for (const [key, entry] of known) {
      const parts = parseImapKey(key);
      if (!parts) continue;
      const folder: FolderKnowledge = byFolder.get(parts.folder) ?? new Map();
      byFolder.set(parts.folder, folder);
      const uids = folder.get(parts.uidValidity) ?? new Map();
      folder.set(parts.uidValidity, uids);
      uids.set(parts.uid, [key, entry]);
    }
    const messages: SourceMessage[] = [];
    const vanished: string[] = [];
    let reset = false;
    const release = await this.lock();
    try {
      for (const folder of this.folders) {
        const listed = await this.listFolder(folder, byFolder.get(folder.path) ?? new Map());
        messages.push(...listed.messages);
        vanished.push(...listed.vanished);
        reset ||= listed.reset;
      }
    } finally {
      release();
    }
    return { messages, vanished, reset };
  }

  private async listFolder(
    folder: ResolvedFolder,
    knowledge: FolderKnowledge,
  ): Promise<{ messages: SourceMessage[]; vanished: string[]; reset: boolean }> {
    const box = await this.select(folder.path);
    const uidValidity = box.uidValidity;
    const current = knowledge.get(uidValidity) ?? new Map<number, readonly [string, StateEntry]>();
    const older = [...knowledge].filter(([uv]) => uv !== uidValidity);
    const reset = older.length > 0;
    let highest = 0;
    for (const uid of current.keys()) if (uid > highest) highest = uid;
    const origin = (uid: number): ImapOrigin => ({
      protocol: "imap",
      folder: folder.path,
      uidValidity,
      uid,
    });
    const messages: SourceMessage[] = [];
    const vanished: string[] = [];
    if (box.exists > 0) {
      // RFC 3501 §6.4.8: `n:*` with n above the highest UID still answers the last message,
      // so anything at or below `highest` is dropped here.
      const fresh = await this.sizes(`${highest + 1}:*`);
      // Gaps below the highest known UID: left by a cap, the deadline, a refused fetch, or
      // expunged by another client (then the server answers nothing for them).
      const gaps = gapRanges(current, highest);
      const pending = gaps === "" ? new Map<number, number>() : await this.sizes(gaps);
      for (const [uid, size] of [...pending, ...fresh]) {
        if (current.has(uid) || (uid <= highest && !pending.has(uid))) continue;
        messages.push(sourceMessage(origin(uid), size));
      }
      if (highest > 0 && this.action !== "none") {
        const action = await this.pendingActions(highest, current);
        messages.push(
          ...action.listed.map(([uid, entry]) => sourceMessage(origin(uid), entry.size)),
        );
        vanished.push(...action.vanished);
      }
    } else if (removes(this.action)) {
      // Empty: every message known here was moved or deleted (a crash kept state from hearing).
      for (const [key] of current.values()) vanished.push(key);
    }
    messages.sort((a, b) => (a.ref ?? 0) - (b.ref ?? 0));
    // Old-UIDVALIDITY keys are what a duplicate's sha256 is matched against, so they go only
    // once every message of the new UIDVALIDITY is ingested (none of them is still new).
    if (reset && !messages.some((m) => !current.has(m.ref))) {
      for (const [, uids] of older) for (const [key] of uids.values()) vanished.push(key);
    }
    return { messages, vanished, reset };
  }

  /** `UID FETCH set (UID RFC822.SIZE)`: UID → size of the messages in `set` that exist. */
  private async sizes(set: string): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for await (const m of this.client.fetch(set, { uid: true, size: true }, { uid: true })) {
      if (typeof m.uid === "number" && m.uid > 0) out.set(m.uid, m.size ?? 0);
    }
    return out;
  }

  /**
   * Ingested messages whose action was never confirmed (a crash between checkpoint and mark):
   * for move and delete, every known message still in the folder; for flags, those still
   * without the flag. One UID SEARCH over known UIDs, answered by the server's index.
   */
  private async pendingActions(
    highest: number,
    current: ReadonlyMap<number, readonly [string, StateEntry]>,
  ): Promise<{ listed: [number, StateEntry][]; vanished: string[] }> {
    const action = this.action;
    const query: Record<string, unknown> = { uid: `1:${highest}` };
    if (action === "markSeen") query.seen = false;
    else if (isFlag(action)) query.unKeyword = action.flag;
    const found = await this.client.search(query, { uid: true });
    if (found === false) {
      throw new MailIngestError(ErrorCode.COMMAND_FAILED, "UID SEARCH for pending actions failed");
    }
    const present = new Set(found);
    const listed: [number, StateEntry][] = [];
    for (const uid of [...present].sort((a, b) => a - b)) {
      const known = current.get(uid);
      if (known && listed.length < MAX_RECHECK) listed.push([uid, known[1]]);
    }
    const vanished: string[] = [];
    if (removes(action)) {
      for (const [uid, [key]] of current) if (!present.has(uid)) vanished.push(key);
    }
    return { listed, vanished };
  }

  async fetch(message: SourceMessage): Promise<Readable> {
    const origin = imapOrigin(message);
    const release = await this.lock();
    try {
      await this.select(origin.folder, origin.uidValidity);
      const download = await this.client.download(String(origin.uid), undefined, {
        uid: true,
        chunkSize: this.options.chunkBytes ?? DOWNLOAD_CHUNK_BYTES,
      });
      const body = download.content as Readable | undefined;
      if (!body) {
        // Expunged by another client since the listing: only this message is skipped.
        throw new MailIngestError(
          ErrorCode.COMMAND_FAILED,
          `UID ${origin.uid} is no longer in ${origin.folder}`,
        );
      }
      // The lock is held until the body ends or is destroyed (see the file comment).
      finished(body, () => release());
      return body;
    } catch (err) {
      release();
      throw commandError(err, `fetching UID ${origin.uid} in ${origin.folder}`);
    }
  }

  async markDone(message: SourceMessage): Promise<void> {
    const origin = imapOrigin(message);
    const action = this.action;
    if (action === "none") return;
    const release = await this.lock();
    try {
      await this.select(origin.folder, origin.uidValidity);
      const uid = String(origin.uid);
      let done: boolean;
      if (action === "markSeen") {
        done = await this.client.messageFlagsAdd(uid, ["\\Seen"], { uid: true });
      } else if (isFlag(action)) {
        done = await this.client.messageFlagsAdd(uid, [action.flag], { uid: true });
      } else if (isMove(action)) {
        // UID MOVE (RFC 6851); without MOVE imapflow sends UID COPY, STORE \Deleted and, as
        // UIDPLUS was checked at connect, UID EXPUNGE (RFC 4315 §2.1), never a plain EXPUNGE.
        done = (await this.client.messageMove(uid, this.moveTo as string, { uid: true })) !== false;
      } else {
        // UIDPLUS was checked at connect, so imapflow expunges with UID EXPUNGE.
        done = await this.client.messageDelete(uid, { uid: true });
      }
      if (!done) {
        throw new MailIngestError(
          ErrorCode.COMMAND_FAILED,
          `${describeAction(action)} of UID ${uid} in ${origin.folder} was refused`,
        );
      }
    } catch (err) {
      throw commandError(err, `${describeAction(action)} of UID ${origin.uid} in ${origin.folder}`);
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    // Wait for any download still holding the lock (destroyed bodies release it at once).
    const release = await this.lock();
    try {
      await this.client.logout();
    } finally {
      release();
    }
  }

  abort(): void {
    this.client.close();
  }

  /**
   * SELECTs `path` unless it is selected already; EXAMINE (read-only) when nothing is ever
   * changed on the server. With `uidValidity`, a folder whose UIDVALIDITY changed since the
   * listing refuses the command: its UIDs now name other messages.
   */
  private async select(
    path: string,
    uidValidity?: number,
  ): Promise<{ uidValidity: number; exists: number }> {
    const current = this.client.mailbox;
    let box: { uidValidity: number; exists: number };
    if (current && this.selected?.path === path) {
      box = { uidValidity: Number(current.uidValidity), exists: current.exists };
    } else {
      const opened = await this.client.mailboxOpen(path, { readOnly: this.action === "none" });
      box = { uidValidity: Number(opened.uidValidity), exists: opened.exists };
      this.selected = { path, uidValidity: box.uidValidity };
    }
    if (uidValidity !== undefined && box.uidValidity !== uidValidity) {
      throw new MailIngestError(
        ErrorCode.COMMAND_FAILED,
        `UIDVALIDITY of ${path} changed during the session (${uidValidity} → ${box.uidValidity})`,
      );
    }
    return box;
  }

  /** Waits for the lock; the returned function releases it (once). */
  private lock(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = this.tail;
    this.tail = before.then(() => held);
    let released = false;
    return before.then(() => () => {
      if (released) return;
      released = true;
      release();
    });
  }
}

function isFlag(action: AfterIngest): action is { readonly flag: string } {
  return typeof action === "object" && "flag" in action;
}

function isMove(
  action: AfterIngest,
): action is { readonly moveTo: string; readonly create: boolean } {
  return typeof action === "object" && "moveTo" in action;
}

/** Whether the action takes a message out of its folder. */
function removes(action: AfterIngest): boolean {
  return action === "delete" || isMove(action);
}

function describeAction(action: AfterIngest): string {
  if (typeof action === "string") return action;
  return isFlag(action) ? `flag ${action.flag}` : `move to ${action.moveTo}`;
}

function imapOrigin(message: SourceMessage): ImapOrigin {
  if (message.origin.protocol !== "imap") {
    throw new MailIngestError(ErrorCode.INVALID_ARGUMENT, "not an IMAP message");
  }
  return message.origin;
}

function sourceMessage(origin: ImapOrigin, size: number): SourceMessage {
  return {
    key: imapKey(origin.folder, origin.uidValidity, origin.uid),
    // RFC 5092 IMAP URL form, for logs and the v1 queue message's `uidl`.
    uidl: `${origin.folder};UIDVALIDITY=${origin.uidValidity}/;UID=${origin.uid}`,
    origin,
    size,
    ref: origin.uid,
    ambiguous: false,
  };
}

/**
 * The UID ranges below `highest` that state does not know, newest first, at most MAX_RECHECK
 * of them, as an IMAP sequence set ("" when none). Ranges, not UIDs, are what is bounded: a
 * range of UIDs long expunged costs the server nothing.
 */
export function gapRanges(known: ReadonlyMap<number, unknown>, highest: number): string {
  const ranges: string[] = [];
  let next = highest - 1;
  while (next >= 1 && ranges.length < MAX_RECHECK) {
    if (known.has(next)) {
      next--;
      continue;
    }
    const top = next;
    while (next >= 1 && !known.has(next)) next--;
    ranges.push(next + 1 === top ? String(top) : `${next + 1}:${top}`);
  }
  return ranges.reverse().join(",");
}

function commandError(err: unknown, doing: string): MailIngestError {
  if (isMailIngestError(err)) return err;
  const e = err as { serverResponseCode?: string; code?: string } | undefined;
  // A tagged NO/BAD (imapflow's serverResponseCode, or a refused command) concerns only this
  // message; anything else (a closed socket) ends the session.
  if (e?.serverResponseCode || /NO|BAD/.test(String(e?.code ?? ""))) {
    return new MailIngestError(ErrorCode.COMMAND_FAILED, `${doing}: ${describeError(err)}`, {
      cause: err,
    });
  }
  if (e?.code === "NoConnection" || /closed|ECONNRESET|EPIPE/i.test(describeError(err))) {
    return new MailIngestError(ErrorCode.CONNECTION_CLOSED, `${doing}: ${describeError(err)}`, {
      cause: err,
    });
  }
  return new MailIngestError(ErrorCode.PROTOCOL, `${doing}: ${describeError(err)}`, { cause: err });
}
