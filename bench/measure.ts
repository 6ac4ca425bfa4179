/**
 * Runs one client as a whole process and measures it: wall time from spawn to exit (hrtime, in
 * this process) and peak RSS of the client process itself.
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`, the child's `ru_maxrss` from wait4(2), in
 * KiB) when it is installed. Without it, /proc/<pid>/status `VmHWM` (the kernel's own RSS
 * high-water mark) is polled every 5 ms; the last value read before exit is reported, which can
 * miss a spike in the final few ms of a run.
 */
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const GNU_TIME = "/usr/bin/time";
/** VmHWM poll interval, ms, for the fallback method. */
const POLL_MS = 5;

export interface Measured {
  readonly wallMs: number;
  /** Peak resident set size of the client process, bytes. */
  readonly peakRssBytes: number;
  /**
   * User + system CPU of the client and its children, ms (GNU time %U + %S), or undefined without
   * GNU time. On a machine shared with other work this is the figure load distorts least.
   */
  readonly cpuMs?: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunSpec {
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

function hasGnuTime(): boolean {
  try {
    accessSync(GNU_TIME, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const rssMethod = hasGnuTime()
  ? "GNU time %M (wait4 ru_maxrss of the client process)"
  : "polled /proc/<pid>/status VmHWM every 5 ms (GNU time not installed)";

/** Every child this module starts, so the bench can kill them on SIGINT. */
export const liveChildren = new Set<import("node:child_process").ChildProcess>();

async function readHwm(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const match = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export async function measure(spec: RunSpec): Promise<Measured> {
  const gnu = hasGnuTime();
  const scratch = gnu ? await mkdtemp(join(tmpdir(), "mail-ingest-bench-time-")) : undefined;
  const timeFile = scratch ? join(scratch, "time.txt") : undefined;
  const [command, args] = timeFile
    ? [GNU_TIME, ["-f", "%U %S %M", "-o", timeFile, spec.command, ...spec.args]]
    : [spec.command, [...spec.args]];
  const started = process.hrtime.bigint();
  const child = spawn(command, args, {
    env: spec.env ?? process.env,
    cwd: spec.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveChildren.add(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (c: Buffer) => out.push(c));
  child.stderr.on("data", (c: Buffer) => err.push(c));
  let polledHwm = 0;
  let polling: NodeJS.Timeout | undefined;
  if (!gnu && child.pid !== undefined) {
    const pid = child.pid;
    polling = setInterval(() => {
      void readHwm(pid).then((v) => {
        if (v !== undefined && v > polledHwm) polledHwm = v;
      });
    }, POLL_MS);
  }
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c) => resolve(c));
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  liveChildren.delete(child);
  if (polling) clearInterval(polling);
  let peakRssBytes = polledHwm;
  let cpuMs: number | undefined;
  if (timeFile && scratch) {
    const text = await readFile(timeFile, "utf8").catch(() => "");
    // GNU time prefixes "Command exited with non-zero status N" on failure; the figures are last.
    const [user, sys, kib] = text.trim().split(/\s+/).slice(-3).map(Number);
    peakRssBytes = Number.isFinite(kib) ? (kib as number) * 1024 : 0;
    if (Number.isFinite(user) && Number.isFinite(sys)) {
      cpuMs = ((user as number) + (sys as number)) * 1000;
    }
    await rm(scratch, { recursive: true, force: true });
  }
  return {
    wallMs,
    peakRssBytes,
    cpuMs,
    code,
    stdout: Buffer.concat(out).toString("utf8"),
    stderr: Buffer.concat(err).toString("utf8"),
  };
}
