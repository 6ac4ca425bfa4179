/**
 * A tiny JSON-lines RPC between the bench and its helper servers (test POP3 server, fauxqs).
 * The servers run in child processes so their CPU and memory are never counted in, or compete
 * inside, the process being measured. A child exits when its stdin closes, so a bench that dies
 * (even by SIGKILL) leaves no server behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

type Handler = (args: Record<string, unknown>) => Promise<unknown>;

interface Reply {
  readonly id: number;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: string;
}

/** In the child: answers requests from the bench until stdin closes, then runs `onClose`. */
export function serve(
  handlers: Record<string, Handler>,
  onClose: () => Promise<void>,
): { ready(info: unknown): void } {
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const request = JSON.parse(line) as { id: number; op: string; args: Record<string, unknown> };
    const handler = handlers[request.op];
    const reply = (r: Reply) => process.stdout.write(`${JSON.stringify(r)}\n`);
    if (!handler) {
      reply({ id: request.id, ok: false, error: `unknown op ${request.op}` });
      return;
    }
    handler(request.args).then(
      (result) => reply({ id: request.id, ok: true, result }),
      (err: unknown) => reply({ id: request.id, ok: false, error: String(err) }),
    );
  });
  lines.on("close", () => {
    void onClose().finally(() => process.exit(0));
  });
  return {
    ready(info) {
      process.stdout.write(`${JSON.stringify({ id: 0, ok: true, result: info })}\n`);
    },
  };
}

export interface ChildServer<Info> {
  readonly info: Info;
  readonly process: ChildProcess;
  call<T>(op: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

const TSX = fileURLToPath(new URL("../node_modules/.bin/tsx", import.meta.url));

/** In the bench: starts `bench/<script>` under tsx and waits for its ready line. */
export async function startChild<Info>(script: string): Promise<ChildServer<Info>> {
  const file = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(TSX, [file], {
    stdio: ["pipe", "pipe", "inherit"],
    // The SDK's "node 20 support ends" notice would interleave with the bench's table.
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  });
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 1;
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const info = await new Promise<Info>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${script} exited early (${code})`)));
    lines.on("line", (line) => {
      const reply = JSON.parse(line) as Reply;
      if (reply.id === 0) {
        resolve(reply.result as Info);
        return;
      }
      const pending = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (reply.ok) pending?.resolve(reply.result);
      else pending?.reject(new Error(`${script}: ${reply.error}`));
    });
  });
  let stopped: Promise<void> | undefined;
  return {
    info,
    process: child,
    call<T>(op: string, args: Record<string, unknown> = {}) {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.stdin?.write(`${JSON.stringify({ id, op, args })}\n`);
      });
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin?.end();
      });
      return stopped;
    },
  };
}
