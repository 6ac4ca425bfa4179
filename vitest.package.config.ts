import { defineConfig } from "vitest/config";

/**
 * `npm run test:package`: the consumer's view of the packed package (test/package/). Slow, so it is
 * kept out of `npm test`; `.ci/run` runs it right after.
 */
export default defineConfig({
  test: {
    include: ["test/package/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    pool: "forks",
  },
});
