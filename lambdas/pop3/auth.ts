/**
 * Login: choosing a method and running it. USER/PASS and APOP (RFC 1939 §7) are single commands;
 * the SASL mechanisms (RFC 5034) run through `sasl.ts`. A new SASL mechanism is one factory in
 * `sasl.ts` plus its case in {@link mechanism} and, for "auto", its place in {@link chooseMethod}.
 */
import { ErrorCode, MailIngestError } from "../errors.ts";
import { capa } from "./commands/capa.ts";
import { defaultPort } from "./connection.ts";
import type { Pop3Engine } from "./engine.ts";
import {
  apopDigest,
  authenticate,
  cramMd5,
  oauthBearer,
  plain,
  type SaslMechanism,
  login as saslLogin,
  xoauth2,
} from "./sasl.ts";
import type { AuthMethod, Capabilities, Pop3Credentials, Pop3Options } from "./types.ts";

/** A concrete method: what "auto" resolves to. */
export type ChosenMethod = Exclude<AuthMethod, "auto">;

/** What the method choice depends on, as known after the greeting and CAPA. */
export interface AuthContext {
  /** The server's current capabilities (SASL list, USER). */
  readonly capabilities: Capabilities;
  /** False when the server refused CAPA: USER is then worth trying (RFC 1939 baseline). */
  readonly capaSupported: boolean;
  /** The greeting's APOP timestamp, if any (RFC 1939 §7). */
  readonly apopTimestamp: string | undefined;
}

/** Authenticates; see README for how "auto" picks a mechanism. */
export async function login(engine: Pop3Engine, credentials: Pop3Credentials): Promise<void> {
  engine.assertOpen();
  if (engine.authenticated) {
    throw new MailIngestError(ErrorCode.INVALID_ARGUMENT, "POP3 session is already authenticated");
  }
  validateCredentials(credentials);
  const method = chooseMethod(engine, credentials);
  // Every method sends a password, a token or a password-derived digest (APOP and CRAM-MD5
  // are MD5, crackable offline), so all of them need TLS unless the caller opts out.
  if (!engine.secure && credentials.allowInsecureAuth !== true) {
    throw new MailIngestError(
      ErrorCode.INSECURE_AUTH,
      `POP3 refused to send credentials to ${engine.options.host} without TLS (set allowInsecureAuth to override)`,
    );
  }
  const { username } = credentials;
  const password = credentials.password ?? "";
  const token = credentials.accessToken ?? "";
  switch (method) {
    case "user":
      // RFC 1939 §7 USER/PASS.
      await engine.exec("single", "USER", `USER ${username}`, { authPhase: true });
      await engine.exec("single", "PASS", `PASS ${password}`, {
        authPhase: true,
        traceLine: "PASS ****",
      });
      break;
    case "apop": {
      const digest = apopDigest(engine.apopTimestamp ?? "", password);
      await engine.exec("single", "APOP", `APOP ${username} ${digest}`, {
        authPhase: true,
        traceLine: `APOP ${username} ****`,
      });
      break;
    }
    default:
      await authenticate(
        (line, traceLine) => engine.exec("raw", "AUTH", line, { authPhase: true, traceLine }),
        mechanism(method, username, password, token, engine.options),
      );
  }
  engine.authenticated = true;
  // RFC 2449 §5: capabilities may differ after authentication (e.g. PIPELINING, EXPIRE). A
  // refused CAPA keeps the ones read before login.
  await capa(engine);
}

function mechanism(
  method: Exclude<ChosenMethod, "user" | "apop">,
  username: string,
  password: string,
  token: string,
  options: Pop3Options,
): SaslMechanism {
  switch (method) {
    case "plain":
      return plain(username, password);
    case "login":
      return saslLogin(username, password);
    case "cram-md5":
      return cramMd5(username, password);
    case "xoauth2":
      return xoauth2(username, token);
    case "oauthbearer":
      return oauthBearer(username, token, options.host, defaultPort(options));
  }
}

/**
 * The method to use: the requested one if its secret is present, or for "auto" the first of
 * XOAUTH2/OAUTHBEARER (with a token), SASL PLAIN, USER, APOP, CRAM-MD5, LOGIN the server offers.
 */
export function chooseMethod(context: AuthContext, credentials: Pop3Credentials): ChosenMethod {
  const requested = credentials.auth ?? "auto";
  const caps = context.capabilities;
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
    if (requested === "apop" && context.apopTimestamp === undefined) {
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
  if (caps.user || !context.capaSupported) return "user";
  if (context.apopTimestamp !== undefined) return "apop";
  if (sasl.includes("CRAM-MD5")) return "cram-md5";
  if (sasl.includes("LOGIN")) return "login";
  throw unsupported("no mechanism in common with the server");
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
