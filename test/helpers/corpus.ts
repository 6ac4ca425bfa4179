/** The shared real-world and malformed mail corpus (`../shared/corpus/mikel-mail`, MIT). */
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dirname, "../..");

/** CI clones the repo with `shared/` beside it, so the corpus is found relative to the repo. */
export const CORPUS_DIR = resolve(REPO_ROOT, "../shared/corpus/mikel-mail");

/** Every mail file of the corpus, sorted, without its LICENSE. */
export function corpusFiles(dir = CORPUS_DIR): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) return corpusFiles(full);
      return name === "LICENSE" ? [] : [full];
    });
}
