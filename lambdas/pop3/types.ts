/** Public option and result types of the POP3 client. */

/** How the connection is secured: RFC 8314 implicit TLS, RFC 2595 STLS, or plaintext. */
export type TlsMode = "implicit" | "starttls" | "none";

export type AuthMethod =
  | "auto"
  | "plain"
  | "login"
  | "cram-md5"
  | "user"
  | "apop"
  | "xoauth2"
  | "oauthbearer";

export interface TraceEvent {
  /** C: client to server, S: server to client. */
  readonly direction: "C" | "S";
  /** One protocol line without CRLF; secrets replaced by `****`. Message bodies are never traced. */
  readonly line: string;
}

export interface Pop3Options {
  host: string;
  /** @default 995 for implicit TLS, 110 otherwise */
  port?: number;
  /** @default "implicit" */
  tls?: TlsMode;
  /** SNI and certificate identity override, e.g. when `host` is an IP literal. */
  servername?: string;
  /** Private CA certificates (PEM) trusted instead of the system store. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Idle timeout while waiting on the server for a response, in ms. @default 30_000 */
  timeoutMs?: number;
  /** TCP connect plus implicit-TLS handshake budget, in ms. @default 15_000 */
  connectTimeoutMs?: number;
  /** Max commands written ahead of their responses when PIPELINING is offered. @default 16 */
  pipelineWindow?: number;
  /** Receives every protocol line, redacted. */
  trace?: (event: TraceEvent) => void;
}

export interface Pop3Credentials {
  username: string;
  password?: string;
  /** OAuth2 access token for xoauth2 / oauthbearer. */
  accessToken?: string;
  /** @default "auto" */
  auth?: AuthMethod;
  /** Allow sending credentials over a connection without TLS. @default false */
  allowInsecureAuth?: boolean;
}

/** RFC 2449 capabilities. */
export interface Capabilities {
  /** Every CAPA line as received. Empty when the server has no CAPA. */
  raw: string[];
  /** SASL mechanisms, upper case. */
  sasl: string[];
  pipelining: boolean;
  uidl: boolean;
  top: boolean;
  user: boolean;
  stls: boolean;
  respCodes: boolean;
  authRespCode: boolean;
  /** EXPIRE days, or NEVER (RFC 2449 §6.7). */
  expire?: number | "NEVER";
  /** LOGIN-DELAY seconds (RFC 2449 §6.8). */
  loginDelay?: number;
  implementation?: string;
}

export interface ListEntry {
  msg: number;
  size: number;
}

export interface UidlEntry {
  msg: number;
  uidl: string;
}
