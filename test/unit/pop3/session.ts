/** Shared helpers for the POP3 client transcript tests. */
import type { Readable } from "node:stream";
import { expect } from "vitest";
import { Pop3Client, type Pop3Options, type TraceEvent } from "../../../lambdas/pop3/index.ts";
import {
  type Step,
  startTranscriptServer,
  type TranscriptServer,
  type TranscriptServerOptions,
} from "../../helpers/transcript-server.ts";

export const TIMESTAMP = "<1896.697170952@dbc.mtview.ca.us>";
export const GREETING = `S: +OK POP3 server ready ${TIMESTAMP}`;

/** The CAPA exchange advertising `caps`. */
export function capa(...caps: string[]): Step[] {
  return ["C: CAPA", "S: +OK Capability list follows", ...caps.map((c) => `S: ${c}`), "S: ."];
}

/** Greeting plus CAPA, the start of every plaintext session. */
export function opening(...caps: string[]): Step[] {
  return [GREETING, ...capa(...caps)];
}

export interface Session {
  server: TranscriptServer;
  client: Pop3Client;
  trace: TraceEvent[];
}

/**
 * Plays `steps` against a fresh client (tls "none" unless overridden), runs `body`, then asserts
 * the server saw exactly the expected client lines.
 */
export async function withSession(
  steps: Step[],
  body: (s: Session) => Promise<void>,
  options: Partial<Pop3Options> = {},
  serverOptions: TranscriptServerOptions = {},
): Promise<TranscriptServer> {
  const server = await startTranscriptServer(steps, serverOptions);
  const trace: TraceEvent[] = [];
  try {
    const client = await Pop3Client.connect({
      host: server.host,
      port: server.port,
      tls: "none",
      timeoutMs: 5_000,
      trace: (e) => trace.push(e),
      ...options,
    });
    try {
      await body({ server, client, trace });
    } finally {
      client.close();
    }
    expect(server.errors).toEqual([]);
    return server;
  } finally {
    await server.close();
  }
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** USER/PASS login lines for bob/secret. */
export const USER_PASS: Step[] = ["C: USER bob", "S: +OK", "C: PASS secret", "S: +OK logged in"];
