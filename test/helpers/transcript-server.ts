/**
 * A transcript-replay POP3 server for tests: a real TCP (or TLS) server on loopback that plays
 * `S:` lines and checks `C:` lines, recording every client line and every mismatch.
 *
 * Steps are "S: text" (sent with CRLF), "C: text" (expected client line), or objects for raw
 * bytes, STLS upgrade, closing, stalling and custom actions. Consecutive server output is written
 * in one `write`, so it reaches the client in one segment (used by the STLS injection test).
 */
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import {
  createServer as createTlsServer,
  type TLSSocket,
  TLSSocket as TlsSocketClass,
} from "node:tls";

export type Step =
  | string
  | { readonly c: RegExp }
  | { readonly raw: string | Buffer }
  | { readonly starttls: true }
  | { readonly close: true }
  | { readonly destroy: true }
  | { readonly stall: true }
  | { readonly expectQuiet: true }
  | { readonly run: (socket: Socket) => Promise<void> | void };

export interface TranscriptServerOptions {
  /** Key and certificate (PEM): implicit TLS when `implicitTls`, and the STLS upgrade. */
  readonly tls?: { readonly key: string | Buffer; readonly cert: string | Buffer };
  readonly implicitTls?: boolean;
  /** Loopback address to bind. @default "127.0.0.1" */
  readonly host?: "127.0.0.1" | "::1";
}

export interface TranscriptServer {
  readonly host: string;
  readonly port: number;
  /** Every line the client sent, in order, across connections. */
  readonly received: string[];
  /** Mismatches between expected and received client lines. */
  readonly errors: string[];
  /** Every SNI name clients offered in TLS handshakes (none is recorded when none was sent). */
  readonly sni: string[];
  /** Resolves when the first connection has played the whole transcript (or failed). */
  readonly finished: Promise<void>;
  /** Number of accepted connections. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * How long `expectQuiet` listens for unexpected client bytes, in ms. Only a negative check (the
 * client did not pipeline): it never measures speed.
 */
const QUIET_MS = 60;

/** Line reader over a socket that can be swapped after STLS. */
class LineSource {
  #buffer = Buffer.alloc(0);
  #waiter: ((line: string | null) => void) | undefined;
  #ended = false;
  #socket: Socket | undefined;
  readonly #onData = (chunk: Buffer) => {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    this.#deliver();
  };
  readonly #onEnd = () => {
    this.#ended = true;
    this.#deliver();
  };

  attach(socket: Socket): void {
    this.#socket = socket;
    socket.on("data", this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("close", this.#onEnd);
  }

  detach(): void {
    this.#socket?.off("data", this.#onData);
    this.#socket?.off("end", this.#onEnd);
    this.#socket?.off("close", this.#onEnd);
    this.#buffer = Buffer.alloc(0);
  }

  /** Octets received but not yet consumed as lines. */
  get buffered(): number {
    return this.#buffer.length;
  }

  next(): Promise<string | null> {
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.#deliver();
    });
  }

  #deliver(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    const lf = this.#buffer.indexOf(0x0a);
    if (lf !== -1) {
      const line = this.#buffer.subarray(0, lf).toString("utf8").replace(/\r$/, "");
      this.#buffer = this.#buffer.subarray(lf + 1);
      this.#waiter = undefined;
      waiter(line);
    } else if (this.#ended) {
      this.#waiter = undefined;
      waiter(null);
    }
  }
}

export async function startTranscriptServer(
  steps: readonly Step[],
  options: TranscriptServerOptions = {},
): Promise<TranscriptServer> {
  const received: string[] = [];
  const errors: string[] = [];
  const sni: string[] = [];
  const SNICallback = (name: string, callback: (err: Error | null) => void) => {
    sni.push(name);
    callback(null);
  };
  const sockets = new Set<Socket>();
  let connections = 0;
  let resolveFinished: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
  });

  const play = async (initial: Socket): Promise<void> => {
    let socket: Socket = initial;
    const source = new LineSource();
    source.attach(socket);
    let out: Buffer[] = [];
    const flush = () => {
      if (out.length > 0 && !socket.destroyed) socket.write(Buffer.concat(out));
      out = [];
    };
    for (const [index, step] of steps.entries()) {
      if (typeof step === "string" && step.startsWith("S:")) {
        out.push(Buffer.from(`${step.slice(2).replace(/^ /, "")}\r\n`, "utf8"));
        continue;
      }
      if (typeof step === "object" && "raw" in step) {
        out.push(typeof step.raw === "string" ? Buffer.from(step.raw, "latin1") : step.raw);
        continue;
      }
      flush();
      if (typeof step === "string" || "c" in step) {
        if (typeof step === "string" && !step.startsWith("C:")) {
          throw new Error(`transcript step ${index} must start with "S:" or "C:"`);
        }
        const line = await source.next();
        if (line === null) {
          errors.push(`step ${index}: client closed, expected ${describe(step)}`);
          return;
        }
        received.push(line);
        const expected = typeof step === "string" ? step.slice(2).replace(/^ /, "") : step.c;
        const ok = typeof expected === "string" ? line === expected : expected.test(line);
        if (!ok) {
          errors.push(`step ${index}: expected ${describe(step)}, got C: ${line}`);
          socket.destroy();
          return;
        }
      } else if ("starttls" in step) {
        if (!options.tls) throw new Error("transcript uses starttls but no tls option was given");
        source.detach();
        const secure: TLSSocket = new TlsSocketClass(socket, {
          isServer: true,
          key: options.tls.key,
          cert: options.tls.cert,
          SNICallback,
        });
        const ok = await new Promise<boolean>((resolve) => {
          secure.once("secure", () => resolve(true));
          secure.once("error", () => resolve(false));
          secure.once("close", () => resolve(false));
        });
        if (!ok) {
          errors.push(`step ${index}: TLS handshake failed`);
          return;
        }
        secure.on("error", () => {});
        sockets.add(secure);
        socket = secure;
        source.attach(socket);
      } else if ("close" in step) {
        socket.end();
        return;
      } else if ("destroy" in step) {
        socket.destroy();
        return;
      } else if ("stall" in step) {
        return;
      } else if ("expectQuiet" in step) {
        await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
        if (source.buffered > 0) {
          errors.push(`step ${index}: client sent data before the previous response`);
        }
      } else {
        await step.run(socket);
      }
    }
    flush();
  };

  const onConnection = (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    if (connections > 1) return;
    play(socket)
      .catch((err: unknown) => errors.push(`transcript crashed: ${String(err)}`))
      .finally(resolveFinished);
  };

  let server: Server;
  if (options.implicitTls) {
    if (!options.tls) throw new Error("implicitTls needs the tls option");
    server = createTlsServer(
      { key: options.tls.key, cert: options.tls.cert, SNICallback },
      onConnection,
    );
    server.on("tlsClientError", () => {});
  } else {
    server = createTcpServer(onConnection);
  }
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("server has no port");

  return {
    host,
    port: address.port,
    received,
    errors,
    sni,
    finished,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function describe(step: string | { readonly c: RegExp }): string {
  return typeof step === "string" ? step : `C: ${step.c}`;
}
