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
  const updated = `${withRotatedRefreshToken(file, current, refreshToken)}\n`;
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(tmp, "wx", SECRET_FILE_MODE);
  try {
    await handle.writeFile(updated, "utf8");
    // open()'s mode is filtered by the umask; the token must not become group-readable.
    await handle.chmod(SECRET_FILE_MODE);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(file));
};
