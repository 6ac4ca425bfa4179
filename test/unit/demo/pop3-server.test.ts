/**
 * The in-process POP3 test server, driven over raw sockets (never the project's client), so a bug
 * in one cannot hide a bug in the other.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Pop3TestServer,
  type Pop3TestServerOptions,
  startPop3TestServer,
} from "../../../lambdas/demo/pop3-server.ts";

/** A scripted POP3 client over a raw socket: write lines, read status lines or whole listings. */
class Raw {
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(public socket: net.Socket) {
    this.listen(socket);
  }

  static async connect(server: Pop3TestServer): Promise<Raw> {
    const socket = net.connect({ host: server.host, port: server.port });
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    return new Raw(socket);
  }

  listen(socket: net.Socket): void {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  send(...lines: string[]): void {
    this.socket.write(lines.map((l) => `${l}\r\n`).join(""));
  }

  /** Resolves once `marker` is in the buffer, returning everything up to and including it. */
  async until(marker: string): Promise<Buffer> {
    for (;;) {
      const at = this.buffer.indexOf(marker);
      if (at >= 0) {
        const out = this.buffer.subarray(0, at + marker.length);
        this.buffer = this.buffer.subarray(at + marker.length);
        return out;
      }
      if (this.closed) throw new Error(`connection closed before ${JSON.stringify(marker)}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  async line(): Promise<string> {
    return (await this.until("\r\n")).toString("latin1").slice(0, -2);
  }

  /** A multi-line response's body: raw wire bytes between the status line and CRLF.CRLF. */
  async multi(): Promise<{ status: string; body: Buffer }> {
    const status = await this.line();
    if (!status.startsWith("+OK")) return { status, body: Buffer.alloc(0) };
    // An empty body is followed directly by the terminator line.
    if (this.buffer.subarray(0, 3).toString("latin1") === ".\r\n") {
      await this.until(".\r\n");
      return { status, body: Buffer.alloc(0) };
    }
    const raw = await this.until("\r\n.\r\n");
    return { status, body: raw.subarray(0, raw.length - 3) };
  }

  async login(user: string, password: string): Promise<string> {
    await this.line();
    this.send(`USER ${user}`, `PASS ${password}`);
    await this.line();
    return this.line();
  }

  async closedByServer(): Promise<void> {
    if (!this.closed) await new Promise((resolve) => this.socket.once("close", resolve));
  }
}

const servers: Pop3TestServer[] = [];
const sockets: net.Socket[] = [];

async function serve(
  messages: Buffer[],
  extra: Partial<Pop3TestServerOptions> = {},
): Promise<Pop3TestServer> {
  const server = await startPop3TestServer({
    users: { u: { password: "pw", messages: messages.map((data) => ({ data })) } },
    ...extra,
  });
  servers.push(server);
  return server;
}

async function open(server: Pop3TestServer): Promise<Raw> {
  const raw = await Raw.connect(server);
  sockets.push(raw.socket);
  return raw;
}

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const msg = (text: string) => Buffer.from(text.replace(/\n/g, "\r\n"), "latin1");

describe("POP3 test server", () => {
  it("byte-stuffs lines starting with '.' on the wire and ends RETR with CRLF.CRLF", async () => {
    const data = msg("Subject: dots\n\n.one\n..two\n.\nlast\n");
    const server = await serve([data]);
    const raw = await open(server);
    expect(await raw.login("u", "pw")).toMatch(/^\+OK/);
    raw.send("LIST 1", "RETR 1");
    expect(await raw.line()).toBe(`+OK 1 ${data.length}`);
    const { status, body } = await raw.multi();
    expect(status).toBe(`+OK ${data.length} octets`);
    expect(body.toString("latin1")).toBe(
      msg("Subject: dots\n\n..one\n...two\n..\nlast\n").toString("latin1"),
    );
  });

  it("streams a multi-megabyte RETR byte-exact across its write chunks", async () => {
    // Dot lines placed around the 64 KiB write-chunk borders would be mangled by an off-by-one.
    const lines: string[] = ["Subject: big", ""];
    for (let i = 0, length = 0; length < 3_000_000; i++) {
      const line = i % 3 === 0 ? `.line ${i}` : `line ${i} ${"x".repeat(i % 97)}`;
      lines.push(line);
      length += line.length + 2;
    }
    const data = Buffer.from(`${lines.join("\r\n")}\r\n`, "latin1");
    const server = await serve([data]);
    const raw = await open(server);
    await raw.login("u", "pw");
    raw.send("RETR 1");
    const { body } = await raw.multi();
    const unstuffed = body.toString("latin1").replace(/^\.\./gm, ".");
    expect(createHash("sha256").update(unstuffed, "latin1").digest("hex")).toBe(
      createHash("sha256").update(data).digest("hex"),
    );
  });

  it("applies DELE only when QUIT enters the UPDATE state, never on a dropped connection", async () => {
    const server = await serve([msg("Subject: 1\n\na\n"), msg("Subject: 2\n\nb\n")]);
    const dropped = await open(server);
    await dropped.login("u", "pw");
    dropped.send("DELE 1");
    expect(await dropped.line()).toMatch(/^\+OK/);
    dropped.send("STAT");
    expect(await dropped.line()).toMatch(/^\+OK 1 /);
    dropped.socket.destroy();
    await dropped.closedByServer();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.messages("u")).toHaveLength(2);

    const quitting = await open(server);
    await quitting.login("u", "pw");
    quitting.send("DELE 2", "RSET", "DELE 1", "QUIT");
    expect(await quitting.line()).toMatch(/^\+OK/);
    expect(await quitting.line()).toMatch(/^\+OK/);
    expect(await quitting.line()).toMatch(/^\+OK/);
    expect(await quitting.line()).toMatch(/^\+OK/);
    await quitting.closedByServer();
    expect(server.messages("u").map((m) => Buffer.from(m.data).toString("latin1"))).toEqual([
      "Subject: 2\r\n\r\nb\r\n",
    ]);
    expect(server.sessions).toBe(2);
  });

  it("refuses a second concurrent session on the same maildrop with -ERR [IN-USE]", async () => {
    const server = await serve([msg("Subject: 1\n\na\n")]);
    const first = await open(server);
    expect(await first.login("u", "pw")).toMatch(/^\+OK/);
    const second = await open(server);
    expect(await second.login("u", "pw")).toMatch(/^-ERR \[IN-USE\]/);
    first.send("QUIT");
    await first.line();
    await first.closedByServer();
    second.send("USER u", "PASS pw");
    await second.line();
    expect(await second.line()).toMatch(/^\+OK/);
  });

  it("answers pipelined commands in order and numbers UIDL/LIST consistently", async () => {
    const a = msg("Subject: a\n\nalpha\n");
    const b = msg("Subject: b\n\nbravo bravo\n");
    const server = await startPop3TestServer({
      users: { u: { password: "pw", messages: [{ uidl: "id-a", data: a }, { data: b }] } },
    });
    servers.push(server);
    const raw = await open(server);
    await raw.line();
    raw.send("CAPA", "USER u", "PASS pw", "STAT", "UIDL", "LIST", "TOP 2 0", "NOOP");
    expect((await raw.multi()).body.toString()).toMatch(/\r\nPIPELINING\r\n/);
    await raw.line();
    await raw.line();
    expect(await raw.line()).toBe(`+OK 2 ${a.length + b.length}`);
    const uidl = (await raw.multi()).body.toString().split("\r\n");
    expect(uidl[0]).toBe("1 id-a");
    expect(uidl[1]).toMatch(/^2 [0-9a-f]{32}$/);
    expect((await raw.multi()).body.toString()).toBe(`1 ${a.length}\r\n2 ${b.length}\r\n`);
    expect((await raw.multi()).body.toString()).toBe("Subject: b\r\n\r\n");
    expect(await raw.line()).toBe("+OK");
  });

  it("accepts APOP and AUTH PLAIN, and rejects a wrong password with -ERR [AUTH]", async () => {
    const server = await serve([msg("Subject: 1\n\na\n")]);
    const apop = await open(server);
    const greeting = await apop.line();
    const stamp = /<[^>]+>/.exec(greeting)?.[0] ?? "";
    apop.send(`APOP u ${createHash("md5").update(`${stamp}pw`).digest("hex")}`, "QUIT");
    expect(await apop.line()).toMatch(/^\+OK/);

    const plain = await open(server);
    await plain.line();
    plain.send("AUTH PLAIN", Buffer.from("\0u\0pw").toString("base64"), "QUIT");
    expect(await plain.line()).toBe("+ ");
    expect(await plain.line()).toMatch(/^\+OK/);

    const wrong = await open(server);
    expect(await wrong.login("u", "nope")).toMatch(/^-ERR \[AUTH\]/);
  });

  it("injects the configured faults: wrong LIST size, duplicate UIDL, IN-USE, cut RETR", async () => {
    const data = msg(`Subject: x\n\n${"y".repeat(500)}\n`);
    const server = await serve([data, data], {
      faults: { reportWrongSize: true, duplicateUidl: true, cutRetrAfterBytes: 100 },
    });
    const raw = await open(server);
    await raw.login("u", "pw");
    raw.send("LIST 1", "UIDL");
    expect(await raw.line()).toBe(`+OK 1 ${data.length + 1}`);
    const [first, second] = (await raw.multi()).body.toString().split("\r\n");
    expect(first?.split(" ")[1]).toBe(second?.split(" ")[1]);
    raw.send("RETR 1");
    await raw.line();
    await raw.closedByServer();

    const busy = await serve([data], { faults: { inUse: true } });
    expect(await (await open(busy)).login("u", "pw")).toMatch(/^-ERR \[IN-USE\]/);
  });

  describe("with TLS", () => {
    let dir: string;
    let key: string;
    let cert: string;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), "pop3-server-test-"));
      await promisify(execFile)(
        "openssl",
        [
          ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
          ...["-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1"],
          ...["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        ],
        { cwd: dir },
      );
      key = await readFile(join(dir, "key.pem"), "utf8");
      cert = await readFile(join(dir, "cert.pem"), "utf8");
    });

    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("upgrades with STLS, ignores plaintext pipelined after it, and stops offering STLS", async () => {
      const server = await serve([msg("Subject: 1\n\na\n")], {
        tls: { key, cert, mode: "starttls" },
      });
      const raw = await open(server);
      await raw.line();
      raw.send("CAPA");
      expect((await raw.multi()).body.toString()).toMatch(/\r\nSTLS\r\n/);
      // The injected USER must be dropped (RFC 2595 §3): otherwise PASS alone would succeed.
      raw.send("STLS", "USER u");
      expect(await raw.line()).toMatch(/^\+OK/);
      const secure = tls.connect({ socket: raw.socket, ca: cert, servername: "localhost" });
      await new Promise((resolve, reject) =>
        secure.once("secureConnect", resolve).once("error", reject),
      );
      const upgraded = new Raw(secure);
      upgraded.send("PASS pw", "CAPA");
      expect(await upgraded.line()).toMatch(/^-ERR/);
      expect((await upgraded.multi()).body.toString()).not.toMatch(/STLS/);
      secure.destroy();
    });

    it("serves implicit TLS that verifies against the certificate", async () => {
      const server = await serve([msg("Subject: 1\n\na\n")], {
        tls: { key, cert, mode: "implicit" },
      });
      const secure = tls.connect({
        host: server.host,
        port: server.port,
        ca: cert,
        servername: "localhost",
      });
      sockets.push(secure);
      await new Promise((resolve, reject) =>
        secure.once("secureConnect", resolve).once("error", reject),
      );
      const raw = new Raw(secure);
      expect(await raw.login("u", "pw")).toMatch(/^\+OK/);
    });
  });
});
