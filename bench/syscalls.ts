/**
 * `npm run bench -- --syscalls`: counts the system calls of one mail-ingest (fs) drain with
 * `strace -c -f`, per message. Wall time on a shared machine is noisy; syscall counts are not,
 * so a change to the write path is measured here first.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Client } from "./clients.ts";

export interface SyscallCounts {
  readonly total: number;
  readonly byName: Readonly<Record<string, number>>;
}

/** Runs `client` once under `strace -c -f` and returns the call counts from its summary. */
export async function countSyscalls(client: Client, outDir: string): Promise<SyscallCounts> {
  const spec = await client.spec();
  const out = join(outDir, "strace.txt");
  await new Promise<void>((resolve, reject) => {
    const child = spawn("strace", ["-c", "-f", "-o", out, spec.command, ...spec.args], {
      env: spec.env,
      cwd: spec.cwd,
      stdio: ["ignore", "ignore", "inherit"],
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`strace exited with ${code}`)),
    );
  });
  return parseStraceSummary(await readFile(out, "utf8"));
}

/** Parses the table `strace -c` prints: `% time seconds usecs/call calls [errors] syscall`. */
export function parseStraceSummary(text: string): SyscallCounts {
  const byName: Record<string, number> = {};
  let total = 0;
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5 || !/^\d/.test(cols[0] ?? "")) continue;
    const name = cols.at(-1) as string;
    const calls = Number(cols[3]);
    if (name === "total") total = calls;
    else if (Number.isFinite(calls)) byName[name] = calls;
  }
  return { total, byName };
}
