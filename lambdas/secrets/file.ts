/**
 * Write-back of a rotated refresh token into a `{"file": PATH}` secret, so the next CLI run starts
 * from the rotated token: re-read, merge (every other field kept), then an atomic replace (temp
 * file with mode 0600 in the same directory, fsync, rename, directory fsync), so a crash leaves
 * either the old file or the new one, never half of either.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fsyncDir } from "../adapters/fs-atomic.ts";
import { withRotatedRefreshToken } from "./parse.ts";
import type { RefreshTokenWriter } from "./source.ts";

/** Owner read/write only: the file holds a refresh token. */
const SECRET_FILE_MODE = 0o600;

export const writeRefreshTokenToFile: RefreshTokenWriter = async (file, refreshToken) => {
  const current = (await readFile(file, "utf8")).replace(/\r?\n$/, "");
  await writeSecretFile(file, `${withRotatedRefreshToken(file, current, refreshToken)}\n`, {
    replace: true,
  });
};

/**
 * Writes a secret file with mode 0600 from its creation. With `replace`, atomically replaces any
 * file at `path` (temp file, fsync, rename, directory fsync); without it, never replaces an
 * existing file (O_EXCL), so `oauth login --out` cannot clobber a secret by accident.
 */
export async function writeSecretFile(
  path: string,
  text: string,
  { replace }: { readonly replace: boolean },
): Promise<void> {
  const target = replace
    ? join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`)
    : path;
  const handle = await open(target, "wx", SECRET_FILE_MODE);
  try {
    await handle.writeFile(text, "utf8");
    // open()'s mode is filtered by the umask; the token must not become group-readable.
    await handle.chmod(SECRET_FILE_MODE);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(target).catch(() => undefined);
    throw err;
  }
  await handle.close();
  if (replace) {
    try {
      await rename(target, path);
    } catch (err) {
      await unlink(target).catch(() => undefined);
      throw err;
    }
  }
  await fsyncDir(dirname(path));
}
