/**
 * SASL mechanisms for the POP3 AUTH command (RFC 5034) and the exchange driver. Mechanisms are
 * pure: they turn server challenges into responses; the driver owns the wire.
 */
import { createHash, createHmac } from "node:crypto";
import { ErrorCode, MailIngestError } from "../errors.ts";
import { serverError } from "./errors.ts";
import { MAX_AUTH_INITIAL_LINE, MAX_SASL_STEPS } from "./limits.ts";

export interface SaslMechanism {
  /** The mechanism name sent after AUTH. */
  readonly name: string;
  /**
   * The client-first message, when the mechanism has one. Sent as the AUTH initial response when
   * the line fits (RFC 5034 §4), otherwise in answer to the server's first (empty) challenge.
   */
  readonly initialResponse?: Buffer;
  /** Never use the initial-response form (Microsoft 365 XOAUTH2 wants the two-step form). */
  readonly twoStep?: boolean;
  /** The answer to a server challenge (`step` counts challenges, from 0). */
  respond(challenge: Buffer, step: number): Buffer;
}

/** Sends one line (redacted as `traceLine` in the trace) and returns the server's next line. */
export type SaslIo = (line: string, traceLine: string) => Promise<string>;

export function plain(username: string, password: string): SaslMechanism {
  // RFC 4616 §2: authzid NUL authcid NUL passwd; an empty authzid means "act as authcid".
  const message = Buffer.from(`\0${username}\0${password}`, "utf8");
  return {
    name: "PLAIN",
    initialResponse: message,
    respond: () => message,
  };
}

export function login(username: string, password: string): SaslMechanism {
  // draft-murchison-sasl-login: the first challenge asks for the user name, the second for the
  // password. Servers word the prompts differently, so we go by order, not text.
  return {
    name: "LOGIN",
    twoStep: true,
    respond: (_challenge, step) => Buffer.from(step === 0 ? username : password, "utf8"),
  };
}

export function cramMd5(username: string, password: string): SaslMechanism {
  // RFC 2195 §2: "user SP hex(HMAC-MD5(password, challenge))".
  return {
    name: "CRAM-MD5",
    twoStep: true,
    respond: (challenge) => {
      const digest = createHmac("md5", Buffer.from(password, "utf8"))
        .update(challenge)
        .digest("hex");
      return Buffer.from(`${username} ${digest}`, "utf8");
    },
  };
}

export function xoauth2(username: string, accessToken: string): SaslMechanism {
  const message = Buffer.from(`user=${username}\x01auth=Bearer ${accessToken}\x01\x01`, "utf8");
  return {
    name: "XOAUTH2",
    // Microsoft 365 rejects the initial-response form on POP3: AUTH XOAUTH2, "+", then token.
    twoStep: true,
    initialResponse: message,
    // After the token, a challenge carries the error JSON; the client answers with an empty
    // line and the server then sends -ERR (Google and Microsoft XOAUTH2 docs).
    respond: () => Buffer.alloc(0),
  };
}

export function oauthBearer(
  username: string,
  accessToken: string,
  host: string,
  port: number,
): SaslMechanism {
  // RFC 7628 §3.1: gs2 header, then kvpairs separated by 0x01, ended by two 0x01.
  const message = Buffer.from(
    `n,a=${saslName(username)},\x01host=${host}\x01port=${port}\x01auth=Bearer ${accessToken}\x01\x01`,
    "utf8",
  );
  return {
    name: "OAUTHBEARER",
    initialResponse: message,
    // RFC 7628 §3.2.3: the error challenge is answered with a single 0x01.
    respond: () => Buffer.from([0x01]),
  };
}

/** RFC 5801 §4 saslname: "," and "=" are escaped. */
function saslName(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

/** RFC 1939 §7 APOP digest: hex MD5 of the greeting timestamp followed by the secret. */
export function apopDigest(timestamp: string, password: string): string {
  return createHash("md5").update(timestamp, "latin1").update(password, "utf8").digest("hex");
}

/** True for an RFC 5034 §4 continuation line ("+" SP base64, or a bare "+"). */
export function isContinuation(line: string): boolean {
  return line === "+" || line.startsWith("+ ");
}

/** Runs one AUTH exchange to completion; resolves on +OK, throws the mapped error on -ERR. */
export async function authenticate(io: SaslIo, mechanism: SaslMechanism): Promise<void> {
  let pendingInitial = mechanism.initialResponse;
  let line = `AUTH ${mechanism.name}`;
  if (pendingInitial !== undefined && !mechanism.twoStep) {
    // RFC 5034 §4: an empty initial response is sent as "=".
    const encoded = pendingInitial.length === 0 ? "=" : pendingInitial.toString("base64");
    const withInitial = `${line} ${encoded}`;
    if (Buffer.byteLength(withInitial, "utf8") + 2 <= MAX_AUTH_INITIAL_LINE) {
      line = withInitial;
      pendingInitial = undefined;
    }
  }
  const traceLine = line === `AUTH ${mechanism.name}` ? line : `AUTH ${mechanism.name} ****`;
  let reply = await io(line, traceLine);
  let step = 0;
  while (isContinuation(reply)) {
    if (step >= MAX_SASL_STEPS) {
      // RFC 5034 §4: "*" cancels the exchange; the server answers -ERR.
      await io("*", "*");
      throw new MailIngestError(
        ErrorCode.PROTOCOL,
        `POP3 AUTH ${mechanism.name}: too many challenges`,
      );
    }
    let answer: Buffer;
    if (pendingInitial !== undefined) {
      answer = pendingInitial;
      pendingInitial = undefined;
    } else {
      answer = mechanism.respond(Buffer.from(reply.slice(2), "base64"), step);
      step++;
    }
    reply = await io(answer.toString("base64"), "****");
  }
  if (/^\+OK\b/i.test(reply)) return;
  if (/^-ERR\b/i.test(reply)) {
    throw serverError(`AUTH ${mechanism.name}`, reply.replace(/^-ERR ?/i, ""), true);
  }
  throw new MailIngestError(ErrorCode.PROTOCOL, `POP3 AUTH ${mechanism.name}: unexpected reply`);
}
