/** The real-world and malformed mail corpus, vendored in `test/fixtures/mikel-mail` (MIT). */
import { readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dirname, "../..");

/** Inside the repository, so a fresh clone runs the corpus tests with nothing beside it. */
export const CORPUS_DIR = resolve(REPO_ROOT, "test/fixtures/mikel-mail");

/** The corpus's own documents, not mail. */
const NOT_MAIL = new Set(["LICENSE", "README.md"]);

/** Every mail file of the corpus, sorted, without its LICENSE and README. */
export function corpusFiles(dir = CORPUS_DIR): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) return corpusFiles(full);
      return NOT_MAIL.has(name) ? [] : [full];
    });
}
