/**
 * Real SDK clients whose requests never leave the process: a first-in-line middleware answers
 * each command from a test-supplied responder, so adapters run their real code paths (Upload's
 * multipart logic, command construction) against scripted S3/SQS behaviour.
 */
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SQSClient } from "@aws-sdk/client-sqs";

export interface Call {
  readonly command: string;
  readonly input: Record<string, unknown>;
}

export type Responder = (call: Call) => unknown;

const base = {
  region: "us-east-1",
  // Port 9 (discard) on loopback: if interception ever failed, nothing real would be reached.
  endpoint: "http://127.0.0.1:9",
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  maxAttempts: 1,
};

/** Records the call and produces the scripted output (or throws the scripted error). */
function responder(calls: Call[], respond: Responder) {
  return async (command: string | undefined, rawInput: unknown) => {
    const input = isRecord(rawInput) ? rawInput : {};
    const call = { command: command ?? "unknown", input };
    calls.push(call);
    const output = await respond(call);
    return { output: { $metadata: {}, ...(isRecord(output) ? output : {}) }, response: {} };
  };
}

const placement = { step: "initialize", priority: "high", name: "scriptedResponder" } as const;

/** Puts the scripted responder first in line on any SDK v3 client. */
function intercept<C extends S3Client | SQSClient | EventBridgeClient | SecretsManagerClient>(
  client: C,
  respond: Responder,
): { client: C; calls: Call[] } {
  const calls: Call[] = [];
  const answer = responder(calls, respond);
  // The clients share the middleware stack API; their generic types differ only in names.
  (client.middlewareStack as S3Client["middlewareStack"]).add(
    (_next, context) => (args) => answer(context.commandName, args.input) as never,
    placement,
  );
  return { client, calls };
}

export function mockS3(respond: Responder): { client: S3Client; calls: Call[] } {
  return intercept(new S3Client({ ...base, forcePathStyle: true }), respond);
}

export function mockSqs(respond: Responder): { client: SQSClient; calls: Call[] } {
  return intercept(new SQSClient(base), respond);
}

export function mockEventBridge(respond: Responder): { client: EventBridgeClient; calls: Call[] } {
  return intercept(new EventBridgeClient(base), respond);
}

export function mockSecretsManager(respond: Responder): {
  client: SecretsManagerClient;
  calls: Call[];
} {
  return intercept(new SecretsManagerClient(base), respond);
}

/** An S3 service error as the SDK would deserialize it. */
export function s3Error(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: status >= 500 ? "server" : "client",
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}
