/**
 * Start-up figures (issue 11): what an operator waits for when nothing needs doing.
 *
 * - `mail-ingest --help`, whole process, against node running an empty ES module on the same
 *   machine in the same run: Node's own start-up is most of it, and it drifts with machine load
 *   (and with NODE_EXTRA_CA_CERTS, which Node reads at start: the empty module is also timed
 *   without it when it is set);
 * - a poll with nothing new: the mailbox is drained once, then every timed poll finds only known
 *   UIDLs (connect, TLS, login, UIDL + LIST, state load, QUIT).
 *
 * Both run the compiled CLI in `dist/`, which `buildDist` brings up to date with the sources first.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "./clients.ts";
import { measure } from "./measure.ts";
import { median } from "./stats.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Issue 11 goals, ms. */
export const GOAL_HELP_MS = 150;
export const GOAL_NOTHING_NEW_MS = 300;

/** `npm run build`: the bench measures the compiled CLI, so it must match the sources. */
export function buildDist(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, "scripts/build.mjs")], { stdio: "inherit" });
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`npm run build failed (exit ${code})`)),
    );
  });
}

/** The CLI's environment: without MAIL_INGEST_FROM_SOURCE, so bin/ runs dist/. */
function compiledEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { MAIL_INGEST_FROM_SOURCE: _ignored, ...rest } = env;
  return rest;
}

async function wallTimes(
  runs: number,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = compiledEnv(),
): Promise<number[]> {
  const samples: number[] = [];
  // One untimed run: the page cache holds node and dist/ for every timed one.
  for (let run = 0; run <= runs; run++) {
    const m = await measure({ command, args, env, cwd: ROOT });
    if (m.code !== 0)
      throw new Error(`${args.join(" ")}: exit ${m.code}\n${m.stderr.slice(0, 500)}`);
    if (run > 0) samples.push(m.wallMs);
  }
  return samples;
}

export interface StartupOutcome {
  readonly rows: object[];
  readonly text: string;
}

/**
 * `clients` are the mail-ingest clients (fs, s3) of a seeded mailbox of `known` messages; each is
 * drained once, untimed, before its nothing-new polls.
 */
export async function startupCase(
  clients: readonly Client[],
  known: number,
  runs: number,
): Promise<StartupOutcome> {
  const bin = join(ROOT, "bin/mail-ingest.js");
  const scratch = await mkdtemp(join(tmpdir(), "mail-ingest-bench-startup-"));
  const empty = join(scratch, "empty.mjs");
  await writeFile(empty, "");
  const node = median(await wallTimes(runs, process.execPath, [empty]));
  // NODE_EXTRA_CA_CERTS makes Node parse that bundle, and its own root certificates, before it
  // runs any code: every Node client of the bench pays it (mpop does not). Shown apart when set.
  const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...withoutExtra } = compiledEnv();
  const bare =
    extraCaCerts === undefined
      ? undefined
      : median(await wallTimes(runs, process.execPath, [empty], withoutExtra));
  await rm(scratch, { recursive: true, force: true });
  const help = median(await wallTimes(runs, process.execPath, [bin, "--help"]));
  console.log(
    `  node empty.mjs ${node.toFixed(0)} ms${bare === undefined ? "" : ` (${bare.toFixed(0)} ms without NODE_EXTRA_CA_CERTS)`}, mail-ingest --help ${help.toFixed(0)} ms`,
  );
  const rows: object[] = [
    { what: "node empty.mjs", medianWallMs: node, runs },
    ...(bare === undefined
      ? []
      : [{ what: "node empty.mjs without NODE_EXTRA_CA_CERTS", medianWallMs: bare, runs }]),
    { what: "mail-ingest --help", medianWallMs: help, runs, meetsGoal: help <= GOAL_HELP_MS },
  ];
  const cells: string[][] = [
    ["node empty.mjs (the floor)", node.toFixed(0), ""],
    ...(bare === undefined
      ? []
      : [
          [
            `node empty.mjs without NODE_EXTRA_CA_CERTS (set here: ${extraCaCerts})`,
            bare.toFixed(0),
            "",
          ],
        ]),
    ["mail-ingest --help", help.toFixed(0), verdict(help, GOAL_HELP_MS)],
  ];
  for (const client of clients) {
    await client.reset();
    await timedPoll(client, known);
    const samples: number[] = [];
    for (let run = 0; run < runs; run++) samples.push(await timedPoll(client, 0));
    const ms = median(samples);
    console.log(`  ${client.name} poll, nothing new of ${known}: ${ms.toFixed(0)} ms`);
    rows.push({
      what: `${client.name} poll, nothing new`,
      known,
      medianWallMs: ms,
      runs,
      meetsGoal: ms <= GOAL_NOTHING_NEW_MS,
      samplesMs: samples,
    });
    cells.push([
      `${client.name} poll, 0 new of ${known}`,
      ms.toFixed(0),
      verdict(ms, GOAL_NOTHING_NEW_MS),
    ]);
    await client.reset();
  }
  const text = [
    `| what | median wall ms | goal |`,
    `|---|---|---|`,
    ...cells.map((c) => `| ${c.join(" | ")} |`),
  ].join("\n");
  return { rows, text };
}

function verdict(ms: number, goal: number): string {
  return `${ms <= goal ? "met" : "MISSED"} (<= ${goal} ms)`;
}

/** One whole-process poll of the compiled CLI; checks it ingested exactly `expected`. */
async function timedPoll(client: Client, expected: number): Promise<number> {
  const spec = await client.spec();
  const m = await measure({ ...spec, env: compiledEnv(spec.env) });
  const fetched = await client.fetched(m.stdout);
  if (m.code !== 0 || fetched.error || fetched.messages !== expected) {
    throw new Error(
      `${client.name}: exit ${m.code}, ingested ${fetched.messages}, expected ${expected}` +
        `${fetched.error ? `, error: ${fetched.error}` : ""}\n${m.stderr.slice(0, 1000)}`,
    );
  }
  return m.wallMs;
}
