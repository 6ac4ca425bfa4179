/**
 * Transport: TCP connect, implicit TLS (RFC 8314) and the STLS upgrade (RFC 2595). Certificates
 * are always verified; errors are translated to {@link MailIngestError} codes.
 */
import { isIP, type Socket, connect as tcpConnect } from "node:net";
import { checkServerIdentity, type TLSSocket, connect as tlsConnect } from "node:tls";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { DEFAULT_CONNECT_TIMEOUT_MS } from "./limits.ts";
import type { Pop3Options } from "./types.ts";

/** The default port for a TLS mode: 995 for implicit TLS (RFC 8314 §7.3), else 110. */
export function defaultPort(options: Pop3Options): number {
  return options.port ?? ((options.tls ?? "implicit") === "implicit" ? 995 : 110);
}

/** Opens the TCP connection and, for implicit TLS, completes the handshake. */
export async function openTransport(options: Pop3Options): Promise<Socket | TLSSocket> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const port = defaultPort(options);
  const tcp = tcpConnect({ host: options.host, port });
  tcp.setNoDelay(true);
  const timer = setTimeout(() => {
    tcp.destroy(
      new MailIngestError(
        ErrorCode.CONNECT_TIMEOUT,
        `POP3 connect to ${options.host}:${port} timed out after ${timeoutMs} ms`,
      ),
    );
  }, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once("connect", resolve);
      tcp.once("error", reject);
    }).catch((err: unknown) => {
      if (err instanceof MailIngestError) throw err;
      throw new MailIngestError(
        ErrorCode.CONNECT_FAILED,
        `POP3 connect to ${options.host}:${port} failed: ${socketReason(err)}`,
        { cause: err },
      );
    });
  } catch (err) {
    tcp.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  tcp.removeAllListeners("error");
  if ((options.tls ?? "implicit") !== "implicit") return tcp;
  try {
    return await startTls(tcp, options);
  } catch (err) {
    tcp.destroy();
    throw err;
  }
}

/**
 * Runs the TLS handshake over an established TCP socket. Used for implicit TLS and after STLS
 * +OK. SNI is `servername ?? host`, omitted for IP literals (RFC 6066 §3 forbids them), while the
 * certificate identity is still checked against that name (RFC 6125; RFC 2595 §2.4).
 */
export async function startTls(socket: Socket, options: Pop3Options): Promise<TLSSocket> {
  const identity = options.servername ?? options.host;
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const secure = tlsConnect({
    socket,
    ...(isIP(identity) === 0 ? { servername: identity } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    minVersion: "TLSv1.2",
    rejectUnauthorized: true,
    checkServerIdentity: (_name, cert) => checkServerIdentity(identity, cert),
  });
  // The handshake gets its own connectTimeoutMs budget, separate from the TCP connect.
  const timer = setTimeout(() => {
    secure.destroy(
      new MailIngestError(
        ErrorCode.CONNECT_TIMEOUT,
        `POP3 TLS handshake with ${options.host} timed out after ${timeoutMs} ms`,
      ),
    );
  }, timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
      secure.once("close", () => reject(new Error("connection closed during the TLS handshake")));
    });
  } catch (err) {
    secure.destroy();
    if (err instanceof MailIngestError) throw err;
    throw new MailIngestError(
      ErrorCode.TLS_FAILED,
      `POP3 TLS handshake with ${options.host} failed: ${socketReason(err)}`,
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
  }
  secure.removeAllListeners("error");
  secure.removeAllListeners("close");
  secure.setNoDelay(true);
  return secure;
}

/** A short reason from a socket/TLS error: its code and message, never more. */
export function socketReason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
