/**
 * A private, throw-away Dovecot POP3 server for interop tests.
 *
 * Each {@link startDovecot} call runs its own `dovecot -F` (foreground child) with a generated
 * config, base_dir, state_dir, log file, CA + server certificate and Maildirs, all inside one
 * temporary directory, on ephemeral loopback ports. Instances share nothing, so vitest's parallel
 * forks can each run their own. A small `sh` wrapper holds the read end of a pipe from this
 * process and stops Dovecot when that pipe closes, so even a killed test worker leaves no daemon.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, createWriteStream, readFileSync } from "node:fs";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe } from "vitest";
import { makePki } from "./pki.ts";

const DOVECOT_BIN = "/usr/sbin/dovecot";
/** The POP3 service binaries ship in `dovecot-pop3d`, separately from `dovecot-core`. */
const POP3_BINARIES = ["/usr/lib/dovecot/pop3", "/usr/lib/dovecot/pop3-login"];
/** The IMAP ones in `dovecot-imapd`; without them the instance serves POP3 only. */
const IMAP_BINARIES = ["/usr/lib/dovecot/imap", "/usr/lib/dovecot/imap-login"];
/** Start-up budget, ms: Dovecot normally listens within ~200 ms. */
const START_TIMEOUT_MS = 15_000;
/** Shutdown budget, ms, before the master is killed outright. */
const STOP_TIMEOUT_MS = 5_000;
/** Ephemeral ports are probed then released, so another process may grab one first. */
const START_ATTEMPTS = 4;
/** Files written at once by deliver(): enough to hide syscall latency, few enough for fd limits. */
const DELIVER_CONCURRENCY = 16;

export interface DovecotUser {
  user: string;
  password: string;
}

export interface DovecotHandle {
  host: string;
  /** Plain POP3 with STLS (RFC 2595). */
  pop3Port: number;
  /** Implicit TLS (RFC 8314). */
  pop3sPort: number;
  /** Plain IMAP with STARTTLS (RFC 3501 §6.2.1); 0 when dovecot-imapd is not installed. */
  imapPort: number;
  /** IMAP over implicit TLS (RFC 8314); 0 when dovecot-imapd is not installed. */
  imapsPort: number;
  /** PEM of the CA that signed the server certificate (SAN localhost, 127.0.0.1, ::1). */
  caPem: string;
  users: DovecotUser[];
  /**
   * Writes whole messages straight into the user's Maildir `new/`, in order (UIDs follow it);
   * with `folder`, into that IMAP folder's Maildir++ directory, created if missing.
   */
  deliver(
    user: string,
    messages: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    folder?: string,
  ): Promise<void>;
  /** Writes one message from a stream, never holding it in memory (for 100 MB+ messages). */
  deliverStream(user: string, body: AsyncIterable<Uint8Array>): Promise<void>;
  /** Messages currently in the maildrop (`new/` + `cur/`). */
  messageCount(user: string): Promise<number>;
  /** Removes every message from the user's maildrop. */
  clear(user: string): Promise<void>;
  /** The Dovecot log so far, for failure diagnostics. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

export function dovecotAvailable(): { ok: true; path: string } | { ok: false; reason: string } {
  for (const file of [DOVECOT_BIN, ...POP3_BINARIES]) {
    try {
      accessSync(file, constants.X_OK);
    } catch {
      return { ok: false, reason: `${file} not found or not executable` };
    }
  }
  // The server certificate is made with the openssl CLI.
  const path = process.env.PATH ?? "/usr/bin:/bin";
  const hasOpenssl = path.split(":").some((dir) => {
    try {
      accessSync(join(dir, "openssl"), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (!hasOpenssl) return { ok: false, reason: "openssl not found on PATH" };
  return { ok: true, path: DOVECOT_BIN };
}

const availability = dovecotAvailable();
if (!availability.ok) {
  console.warn(`[mail-ingest] Dovecot interop suites skipped: ${availability.reason}`);
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether instances also serve IMAP (dovecot-imapd installed). */
export const imapAvailable = availability.ok && IMAP_BINARIES.every(executable);
if (availability.ok && !imapAvailable) {
  console.warn("[mail-ingest] Dovecot IMAP suites skipped: dovecot-imapd is not installed");
}

/** `describe` when Dovecot's IMAP server is installed, else `describe.skip`. */
export const describeDovecotImap: typeof describe = imapAvailable
  ? describe
  : (describe.skip as typeof describe);

/** `describe` when Dovecot is installed, else `describe.skip` (announced once, above). */
export const describeDovecot: typeof describe = availability.ok
  ? describe
  : (describe.skip as typeof describe);

const DEFAULT_USERS: DovecotUser[] = [
  { user: "alice", password: "alice-Pa55word" },
  { user: "bob", password: "bob-Pa55word" },
];

/** Dovecot refuses UID 0 for mail processes, so as root the maildrops belong to `nobody`. */
function mailOwner(): { uid: number; gid: number; asRoot: boolean } {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  if (uid !== 0) return { uid, gid, asRoot: false };
  const nobody = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields[0] === "nobody");
  return {
    uid: Number(nobody?.[2] ?? 65534),
    gid: Number(nobody?.[3] ?? 65534),
    asRoot: true,
  };
}

function currentUserName(): string {
  const uid = String(process.getuid?.() ?? 0);
  const entry = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .map((line) => line.split(":"))
    .find((fields) => fields[2] === uid);
  return entry?.[0] ?? "root";
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function portFreeOn(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** `count` distinct ports free on 127.0.0.1 (and on ::1 too when `ipv6`). */
async function freePorts(ipv6: boolean, count = 2): Promise<number[]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort("127.0.0.1"));
    if (new Set(ports).size !== count) continue;
    let free = true;
    if (ipv6) for (const port of ports) free &&= await portFreeOn("::1", port);
    if (!free) continue;
    return ports;
  }
  throw new Error("no free loopback ports found");
}

/** True when this machine can listen on ::1 (some containers have IPv6 disabled). */
export async function ipv6LoopbackAvailable(): Promise<boolean> {
  try {
    await freePort("::1");
    return true;
  } catch {
    return false;
  }
}

/**
 * Dovecot validates OAuth2 bearer tokens itself with its oauth2 passdb (part of `dovecot-core`:
 * `/usr/share/dovecot/dovecot-oauth2.conf.ext`), asking an RFC 7662 introspection endpoint.
 */
export interface DovecotOAuth2Options {
  /** POSTed `token=...` (`introspection_mode = post`); answers `{active, username}`. */
  readonly introspectionUrl: string;
}

interface ConfigInput {
  dir: string;
  listen: string;
  pop3Port: number;
  pop3sPort: number;
  /** 0: no IMAP service. */
  imapPort: number;
  imapsPort: number;
  asRoot: boolean;
  oauth2?: DovecotOAuth2Options;
  /** Replaces the IMAP CAPABILITY list Dovecot announces after login (`imap_capability`). */
  imapCapability?: string;
}

/** The oauth2 passdb's settings file: introspection only, the login name must equal `username`. */
function oauth2Config(options: DovecotOAuth2Options): string {
  return `introspection_url = ${options.introspectionUrl}
introspection_mode = post
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 10000
`;
}

/**
 * The IMAP part: folders with special-use attributes (RFC 6154), a Junk that always exists,
 * and the two listeners. `imap_capability` is left at Dovecot's default (MOVE, UIDPLUS,
 * CONDSTORE among them).
 */
function imapConfig(imapPort: number, imapsPort: number, capability?: string): string {
  if (imapPort === 0) return "";
  return `${capability === undefined ? "" : `imap_capability = ${capability}\n`}namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \\Junk
    auto = create
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Archive {
    special_use = \\Archive
  }
}
service imap-login {
  inet_listener imap {
    port = ${imapPort}
  }
  inet_listener imaps {
    port = ${imapsPort}
    ssl = yes
  }
}
`;
}

function dovecotConfig({
  dir,
  listen,
  pop3Port,
  pop3sPort,
  imapPort,
  imapsPort,
  asRoot,
  oauth2,
  imapCapability,
}: ConfigInput): string {
  const internalUser = asRoot ? "root" : currentUserName();
  // Non-root Dovecot cannot switch users, so every service runs as the current user.
  const loginUser = asRoot ? "dovenull" : internalUser;
  return `# Generated by test/helpers/dovecot.ts; private to one test run.
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = mail-ingest-test-${pop3Port}
protocols = pop3${imapPort === 0 ? "" : " imap"}
listen = ${listen}
log_path = ${dir}/dovecot.log
info_log_path = ${dir}/dovecot.log
default_internal_user = ${internalUser}
default_internal_group = ${asRoot ? "root" : internalUser}
default_login_user = ${loginUser}
first_valid_uid = 1
first_valid_gid = 1
# The tests, not the server, decide when plaintext credentials are acceptable.
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 apop${oauth2 ? " xoauth2 oauthbearer" : ""}
# Mail-folder layout for IMAP: Maildir++ subfolders (".Junk/") under the POP3 maildrop.
# Failed-login tests should not wait out the 2 s default penalty.
auth_failure_delay = 0
ssl = yes
ssl_cert = <${dir}/server.pem
ssl_key = <${dir}/server.key
mail_location = maildir:${dir}/mail/%u/Maildir
mail_fsync = never
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
pop3_lock_session = yes
${
  oauth2
    ? `# Bearer tokens are checked by Dovecot against the test authority, never by a password.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = ${dir}/dovecot-oauth2.conf.ext
  result_failure = return-fail
}
`
    : ""
}passdb {
  driver = passwd-file
  args = ${dir}/passwd
}
userdb {
  driver = passwd-file
  args = ${dir}/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = ${pop3Port}
  }
  inet_listener pop3s {
    port = ${pop3sPort}
    ssl = yes
  }
}
service anvil {
  # Mode 0 disables the auth-failure penalty, which would otherwise slow repeated bad logins.
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
${imapConfig(imapPort, imapsPort, imapCapability)}`;
}

/** Resolves once a POP3 greeting arrives on `port`; rejects on any failure. */
function greeted(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1_000);
    socket.once("data", (chunk: Buffer) => {
      socket.destroy();
      if (chunk.subarray(0, 3).toString("latin1") === "+OK") resolve();
      else reject(new Error("unexpected greeting"));
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error("timeout"));
    });
    socket.once("error", reject);
  });
}

function acceptsConnections(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `$1` = dovecot, `$2` = config, `$3` = stderr file, `$4` = the instance directory. Dovecot runs
 * as a background job; a second job reads the pipe from Node (dup'd to fd 3, since background
 * jobs get /dev/null as stdin). At EOF, which comes from stop() and also when Node dies, it stops
 * Dovecot, waits for it, and deletes the directory, so a killed test run leaves nothing behind.
 */
const WRAPPER = `exec 3<&0
"$1" -F -c "$2" >>"$3" 2>&1 3<&- &
pid=$!
(
  cat <&3 >/dev/null
  kill -TERM "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -rf "$4"
) &
wait "$pid"`;

/**
 * Maildir file name (maildir.org): `<secs>.M<usecs>P<pid>.<host>`. Dovecot assigns UIDs to new
 * files in (secs, usecs) order, so a sequence number in those fields keeps delivery order.
 * `S=` (physical size) and `W=` (size with CRLF line endings, what POP3 LIST reports) let
 * Dovecot answer LIST without reading the file.
 */
function maildirName(seq: number, size: number, virtualSize: number): string {
  const secs = 1_700_000_000 + Math.floor(seq / 1_000_000);
  return `${secs}.M${seq % 1_000_000}P${process.pid}.mail-ingest-test,S=${size},W=${virtualSize}`;
}

/** Counts LF bytes not preceded by CR; `prev` is the last byte of the previous chunk. */
function bareLineFeeds(data: Uint8Array, prev: number): number {
  let count = 0;
  let from = 0;
  for (;;) {
    const at = data.indexOf(0x0a, from);
    if (at < 0) return count;
    const before = at === 0 ? prev : data[at - 1];
    if (before !== 0x0d) count++;
    from = at + 1;
  }
}

export async function startDovecot(
  options: {
    users?: DovecotUser[];
    ipv6?: boolean;
    oauth2?: DovecotOAuth2Options;
    /** Replaces the IMAP capabilities announced after login, e.g. to leave MOVE out. */
    imapCapability?: string;
  } = {},
): Promise<DovecotHandle> {
  const found = dovecotAvailable();
  if (!found.ok) throw new Error(`Dovecot unavailable: ${found.reason}`);
  const users = options.users ?? DEFAULT_USERS;
  for (const { user, password } of users) {
    // passwd-file is colon separated; anything else is a test bug, not something to escape.
    if (!/^[A-Za-z0-9._@-]+$/.test(user) || /[:\r\n]/.test(password)) {
      throw new Error(`unsupported test user or password for ${user}`);
    }
  }
  const ipv6 = options.ipv6 ?? false;
  let lastError: unknown;
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(found.path, users, ipv6, options.oauth2, options.imapCapability);
    } catch (err) {
      lastError = err;
      // Only a lost race for a probed port is worth retrying; anything else fails the same way.
      if (!(err instanceof Error && /Address already in use/.test(err.message))) break;
    }
  }
  throw lastError;
}

/** One start in a fresh directory; the wrapper deletes that directory once Dovecot is gone. */
async function startOnce(
  dovecotPath: string,
  users: DovecotUser[],
  ipv6: boolean,
  oauth2: DovecotOAuth2Options | undefined,
  imapCapability: string | undefined,
): Promise<DovecotHandle> {
  const owner = mailOwner();
  const dir = await mkdtemp(join(tmpdir(), "mail-ingest-dovecot-"));
  let child: ChildProcess | undefined;
  try {
    // Login and mail processes run as other users and must traverse into the directory.
    await chmod(dir, 0o755);
    await mkdir(join(dir, "state"));
    // Dovecot reads server.pem / server.key from `dir` (see the config below).
    const { caCert: caPem } = makePki(dir, {
      commonName: "localhost",
      subjectAltName: "DNS:localhost,IP:127.0.0.1,IP:::1",
    });
    const passwd = users
      .map(({ user, password }) => {
        const home = join(dir, "mail", user);
        return `${user}:{PLAIN}${password}:${owner.uid}:${owner.gid}::${home}::`;
      })
      .join("\n");
    await writeFile(join(dir, "passwd"), `${passwd}\n`, { mode: 0o600 });
    await mkdir(join(dir, "mail"), { mode: 0o755 });
    for (const { user } of users) {
      for (const sub of ["tmp", "new", "cur"]) {
        await mkdir(join(dir, "mail", user, "Maildir", sub), { recursive: true, mode: 0o700 });
      }
      if (owner.asRoot) {
        for (const path of [
          join(dir, "mail", user),
          join(dir, "mail", user, "Maildir"),
          ...["tmp", "new", "cur"].map((sub) => join(dir, "mail", user, "Maildir", sub)),
        ]) {
          await chown(path, owner.uid, owner.gid);
        }
      }
    }

    const imap = imapAvailable;
    const ports = await freePorts(ipv6, imap ? 4 : 2);
    const [pop3Port = 0, pop3sPort = 0, imapPort = 0, imapsPort = 0] = ports;
    const listen = ipv6 ? "127.0.0.1, ::1" : "127.0.0.1";
    const confPath = join(dir, "dovecot.conf");
    if (oauth2) await writeFile(join(dir, "dovecot-oauth2.conf.ext"), oauth2Config(oauth2));
    await writeFile(
      confPath,
      dovecotConfig({
        dir,
        listen,
        pop3Port,
        pop3sPort,
        imapPort,
        imapsPort,
        asRoot: owner.asRoot,
        oauth2,
        imapCapability,
      }),
    );
    child = spawn(
      "/bin/sh",
      ["-c", WRAPPER, "sh", dovecotPath, confPath, join(dir, "stderr.log"), dir],
      { stdio: ["pipe", "ignore", "ignore"] },
    );
    child.stdin?.on("error", () => {});
    const started = await waitForStart(child, pop3Port, pop3sPort, ipv6, imapsPort);
    if (started !== "ok") {
      throw new Error(`Dovecot failed to start (${started}):\n${await diagnostics(dir)}`);
    }
    return makeHandle({
      dir,
      child,
      pop3Port,
      pop3sPort,
      imapPort,
      imapsPort,
      caPem,
      users,
      owner,
    });
  } catch (err) {
    if (child) await shutdown(child, dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
}

/** Ends the wrapper's stdin (it then stops Dovecot); SIGKILLs the master if it lingers. */
async function shutdown(child: ChildProcess, dir: string): Promise<void> {
  let pid = 0;
  try {
    pid = Number((await readFile(join(dir, "run", "master.pid"), "utf8")).trim());
  } catch {
    // Never started far enough to write it.
  }
  child.stdin?.end();
  const graceful = await Promise.race([
    exited(child).then(() => true),
    sleep(STOP_TIMEOUT_MS).then(() => false),
  ]);
  if (graceful) return;
  try {
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
  child.kill("SIGKILL");
  await exited(child);
}

async function diagnostics(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const file of ["stderr.log", "dovecot.log"]) {
    try {
      parts.push(await readFile(join(dir, file), "utf8"));
    } catch {
      // Not written yet: nothing to add.
    }
  }
  return parts.join("\n").trim();
}

async function waitForStart(
  child: ChildProcess,
  pop3Port: number,
  pop3sPort: number,
  ipv6: boolean,
  imapsPort: number,
): Promise<string> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return "dovecot exited";
    try {
      await greeted("127.0.0.1", pop3Port);
      await acceptsConnections("127.0.0.1", pop3sPort);
      if (imapsPort !== 0) await acceptsConnections("127.0.0.1", imapsPort);
      if (ipv6) await greeted("::1", pop3Port);
      return "ok";
    } catch {
      await sleep(50);
    }
  }
  return "timed out waiting for the POP3 ports";
}

interface HandleInput {
  dir: string;
  child: ChildProcess;
  pop3Port: number;
  pop3sPort: number;
  imapPort: number;
  imapsPort: number;
  caPem: string;
  users: DovecotUser[];
  owner: { uid: number; gid: number; asRoot: boolean };
}

function makeHandle({
  dir,
  child,
  pop3Port,
  pop3sPort,
  imapPort,
  imapsPort,
  caPem,
  users,
  owner,
}: HandleInput): DovecotHandle {
  let seq = 0;
  let stopped: Promise<void> | undefined;

  const maildir = (user: string): string => {
    if (!users.some((u) => u.user === user)) throw new Error(`unknown test user ${user}`);
    return join(dir, "mail", user, "Maildir");
  };

  /**
   * A folder's Maildir++ directory (`.Name`, with `.` for the hierarchy separator), created
   * with tmp/new/cur when missing. Test folder names are plain ASCII, so no modified UTF-7.
   */
  const folderDir = async (user: string, folder: string): Promise<string> => {
    const root = maildir(user);
    if (folder.toUpperCase() === "INBOX") return root;
    if (!/^[A-Za-z0-9 _-]+(\/[A-Za-z0-9 _-]+)*$/.test(folder)) {
      throw new Error(`unsupported test folder name ${folder}`);
    }
    const path = join(root, `.${folder.replaceAll("/", ".")}`);
    for (const sub of ["", "tmp", "new", "cur"]) {
      await mkdir(join(path, sub), { recursive: true, mode: 0o700 });
      if (owner.asRoot) await chown(join(path, sub), owner.uid, owner.gid);
    }
    return path;
  };

  /** Maildir delivery protocol: write under tmp/, then rename into new/ so readers never see half a file. */
  const place = async (root: string, tmpName: string, name: string): Promise<void> => {
    if (owner.asRoot) await chown(join(root, "tmp", tmpName), owner.uid, owner.gid);
    await rename(join(root, "tmp", tmpName), join(root, "new", name));
  };

  const deliverOne = async (root: string, data: Uint8Array, n: number): Promise<void> => {
    const name = maildirName(n, data.byteLength, data.byteLength + bareLineFeeds(data, 0x0d));
    await writeFile(join(root, "tmp", name), data, { mode: 0o600 });
    await place(root, name, name);
  };

  const listMessages = async (root: string): Promise<string[]> => {
    const names: string[] = [];
    for (const sub of ["new", "cur"]) {
      for (const name of await readdir(join(root, sub))) {
        if (!name.startsWith(".")) names.push(join(sub, name));
      }
    }
    return names;
  };

  return {
    host: "127.0.0.1",
    pop3Port,
    pop3sPort,
    imapPort,
    imapsPort,
    caPem,
    users,
    async deliver(user, messages, folder) {
      const root = folder === undefined ? maildir(user) : await folderDir(user, folder);
      const inFlight = new Set<Promise<void>>();
      let failure: unknown;
      for await (const data of messages) {
        const write = deliverOne(root, data, seq++).catch((err: unknown) => {
          failure ??= err;
        });
        inFlight.add(write);
        void write.finally(() => inFlight.delete(write));
        if (inFlight.size >= DELIVER_CONCURRENCY) await Promise.race(inFlight);
        if (failure) break;
      }
      await Promise.all(inFlight);
      if (failure) throw failure;
    },
    async deliverStream(user, body) {
      const root = maildir(user);
      const n = seq++;
      const tmpName = `${n}.incoming`;
      let size = 0;
      let bare = 0;
      let prev = 0x0d;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          size += chunk.byteLength;
          bare += bareLineFeeds(chunk, prev);
          prev = chunk[chunk.byteLength - 1] ?? prev;
          done(null, chunk);
        },
      });
      await pipeline(body, counter, createWriteStream(join(root, "tmp", tmpName), { mode: 0o600 }));
      await place(root, tmpName, maildirName(n, size, size + bare));
    },
    async messageCount(user) {
      return (await listMessages(maildir(user))).length;
    },
    async clear(user) {
      const root = maildir(user);
      await Promise.all(
        (await listMessages(root)).map((name) => rm(join(root, name), { force: true })),
      );
    },
    log() {
      return diagnostics(dir);
    },
    stop() {
      stopped ??= (async () => {
        await shutdown(child, dir);
        await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      })();
      return stopped;
    },
  };
}

/** The IMAP mailbox fields that reach `user` over implicit TLS, trusting the instance's own CA. */
export function implicitTlsImapMailbox(dovecot: DovecotHandle, user: string) {
  return {
    protocol: "imap",
    host: dovecot.host,
    port: dovecot.imapsPort,
    tls: "implicit",
    ca: dovecot.caPem,
    servername: "localhost",
    username: user,
  } as const;
}

/** The mailbox fields that reach `user` over implicit TLS, trusting the instance's own CA. */
export function implicitTlsMailbox(dovecot: DovecotHandle, user: string) {
  return {
    host: dovecot.host,
    port: dovecot.pop3sPort,
    tls: "implicit",
    ca: dovecot.caPem,
    servername: "localhost",
    username: user,
  } as const;
}
