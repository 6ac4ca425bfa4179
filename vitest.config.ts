import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The packed-package tests build, pack and install: `npm run test:package` (vitest.package.config.ts).
    exclude: ["test/package/**", "**/node_modules/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    globalSetup: ["test/helpers/global-setup.ts"],
    // bin/mail-ingest.js runs the TypeScript sources, not a possibly stale dist/ (the packed
    // package's compiled CLI is tested by test/package/).
    env: { MAIL_INGEST_FROM_SOURCE: "1" },
  },
});
