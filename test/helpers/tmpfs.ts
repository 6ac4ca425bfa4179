/**
 * A small real file system for disk-full tests: a tmpfs mounted on a fresh directory. Mounting
 * needs root (CI runs as root); elsewhere `mountTmpfs` returns the reason it cannot, and the
 * caller skips with a visible notice. The injected-ENOSPC tests cover the same paths everywhere.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Tmpfs {
  readonly dir: string;
  /** Changes the size limit in place (`mount -o remount`), e.g. to free up space. */
  resize(bytes: number): Promise<void>;
  unmount(): Promise<void>;
}

export async function mountTmpfs(bytes: number): Promise<Tmpfs | { unavailable: string }> {
  if (process.getuid?.() !== 0) return { unavailable: "mounting a tmpfs needs root" };
  const dir = await mkdtemp(path.join(tmpdir(), "mi-tmpfs-"));
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0700`, "tmpfs", dir]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    return { unavailable: `mount -t tmpfs failed: ${(err as Error).message.split("\n")[0]}` };
  }
  return {
    dir,
    resize: async (size) => {
      await run("mount", ["-o", `remount,size=${size}`, dir]);
    },
    unmount: async () => {
      await run("umount", ["-l", dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Whether this machine lets a test mount a tmpfs, probed once per file; when it cannot, the
 * reason is printed so the skip is visible.
 */
export async function tmpfsAvailable(): Promise<boolean> {
  const probe = await mountTmpfs(1 << 20);
  if ("unavailable" in probe) {
    console.warn(`[mail-ingest] tmpfs ENOSPC tests skipped: ${probe.unavailable}`);
    return false;
  }
  await probe.unmount();
  return true;
}
