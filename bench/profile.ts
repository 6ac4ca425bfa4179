/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`) into where mail-ingest's time goes:
 * self time grouped by component (POP3 client, mailparser, hashing, fs, TLS, GC, idle...) and
 * the hottest functions. Idle time matters as much as CPU here: a run that is mostly idle is
 * waiting on the network or the disk (round-trips, fsync), not computing.
 */
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { SourceMap } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
    readonly columnNumber?: number;
  };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly components: ReadonlyArray<{ name: string; ms: number; share: number }>;
  readonly functions: ReadonlyArray<{ name: string; where: string; ms: number; share: number }>;
  /**
   * mail-ingest's own functions (lambdas/) by inclusive time: the samples with the function
   * anywhere on their stack, each sample counted once per function. Where self time is spread over
   * Node internals and bindings, this says which of our steps called them.
   */
  readonly ours: ReadonlyArray<{ name: string; where: string; ms: number; share: number }>;
}

/** Ordered: the first matching rule names the component. */
const COMPONENTS: ReadonlyArray<readonly [string, (fn: string, url: string) => boolean]> = [
  ["idle (waiting on I/O)", (fn) => fn === "(idle)"],
  ["garbage collection", (fn) => fn === "(garbage collector)"],
  ["native / other (program)", (fn) => fn === "(program)"],
  ["tsx transpile + module load", (_fn, url) => /node_modules\/(tsx|esbuild)\//.test(url)],
  [
    "mailparser + libmime/libqp/iconv",
    (_fn, url) =>
      /node_modules\/(mailparser|mailsplit|@zone-eu\/mailsplit|libmime|libqp|libbase64|iconv-lite|encoding-japanese|he|html-to-text|linkify-it|punycode|tlds|nodemailer)\//.test(
        url,
      ),
  ],
  ["AWS SDK / smithy", (_fn, url) => /node_modules\/(@aws-sdk|@smithy|@aws-crypto)\//.test(url)],
  ["other dependencies", (_fn, url) => url.includes("node_modules/")],
  ["native bindings (fs, sockets, buffers)", (fn, url) => url === "" && !fn.startsWith("(")],
  ["POP3 client + reader (lambdas/pop3)", (_fn, url) => url.includes("/lambdas/pop3/")],
  ["MIME parse glue (lambdas/mime)", (_fn, url) => url.includes("/lambdas/mime/")],
  ["ingest session (lambdas/ingest)", (_fn, url) => url.includes("/lambdas/ingest/")],
  ["storage/queue/state adapters", (_fn, url) => url.includes("/lambdas/adapters/")],
  ["other mail-ingest code", (_fn, url) => url.includes("/lambdas/")],
  ["hashing (node:crypto)", (_fn, url) => url.startsWith("node:internal/crypto")],
  ["TLS", (_fn, url) => /^node:(_tls|tls|internal\/tls)/.test(url)],
  ["fs", (_fn, url) => /^node:(fs|internal\/fs)/.test(url)],
  ["streams", (_fn, url) => url.startsWith("node:internal/streams") || url === "node:stream"],
  [
    "net / event loop",
    (_fn, url) => /^node:(net|internal\/(net|stream_base|timers|process))/.test(url),
  ],
  ["module loading (node:internal/modules)", (_fn, url) => url.startsWith("node:internal/modules")],
  ["other node internals", (_fn, url) => url.startsWith("node:")],
  ["other", () => true],
];

function component(fn: string, url: string): string {
  for (const [name, test] of COMPONENTS) if (test(fn, url)) return name;
  return "other";
}

function shortUrl(url: string): string {
  const at = url.indexOf("node_modules/");
  if (at >= 0) return url.slice(at + "node_modules/".length);
  const lambdas = url.indexOf("/lambdas/");
  if (lambdas >= 0) return url.slice(lambdas + 1);
  return url || "(native)";
}

/**
 * The compiled CLI runs esbuild bundles (`dist/cli/`: its chunks and the vendored mailparser), whose
 * frames would all read as one file. Their source maps give each frame its original file (under
 * lambdas/ or node_modules/) and line, which the components below classify.
 */
const sourceMaps = new Map<string, SourceMap | undefined>();

function sourceMapFor(url: string): SourceMap | undefined {
  if (!url.startsWith("file://") || !/\/dist\/cli\/[^/]+\.c?js$/.test(url)) return undefined;
  if (!sourceMaps.has(url)) {
    let map: SourceMap | undefined;
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${fileURLToPath(url)}.map`, "utf8")));
    } catch {
      map = undefined;
    }
    sourceMaps.set(url, map);
  }
  return sourceMaps.get(url);
}

function originalFrame(frame: ProfileNode["callFrame"]): ProfileNode["callFrame"] {
  const map = sourceMapFor(frame.url);
  if (!map) return frame;
  const entry = map.findEntry(frame.lineNumber, frame.columnNumber ?? 0) as {
    originalSource?: string;
    originalLine?: number;
  };
  if (!entry.originalSource) return frame;
  const source = entry.originalSource.startsWith("file://")
    ? entry.originalSource
    : pathToFileURL(resolve(dirname(fileURLToPath(frame.url)), entry.originalSource)).href;
  return { ...frame, url: source, lineNumber: entry.originalLine ?? frame.lineNumber };
}

export function summarise(profile: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // Each sample is charged the delta that follows it (the V8 convention).
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const totalUs = profile.endTime - profile.startTime;
  const components = new Map<string, number>();
  const functions = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = originalFrame(node.callFrame);
    const name = component(functionName, url);
    components.set(name, (components.get(name) ?? 0) + us);
    const fn = functionName || "(anonymous)";
    const where = `${shortUrl(url)}:${lineNumber + 1}`;
    const key = `${fn}@${where}`;
    const entry = functions.get(key) ?? { name: fn, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const share = (us: number) => (totalUs > 0 ? us / totalUs : 0);
  return {
    ours: inclusiveOurs(profile, byId, selfUs, top * 3).map((f) => ({
      ...f,
      share: share(f.ms * 1000),
    })),
    totalMs: totalUs / 1000,
    components: [...components]
      .map(([name, us]) => ({ name, ms: us / 1000, share: share(us) }))
      .sort((a, b) => b.ms - a.ms),
    functions: [...functions.values()]
      .filter((f) => !f.name.startsWith("("))
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, share: share(f.us) })),
  };
}

function inclusiveOurs(
  profile: CpuProfile,
  byId: ReadonlyMap<number, ProfileNode>,
  selfUs: ReadonlyMap<number, number>,
  top: number,
): Array<{ name: string; where: string; ms: number }> {
  const parent = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parent.set(child, node.id);
  /** Per node: our functions on its stack (itself and its callers), as keys. */
  const frameKey = new Map<number, { key: string; name: string; where: string } | null>();
  const keyOf = (id: number) => {
    if (!frameKey.has(id)) {
      const node = byId.get(id);
      const frame = node ? originalFrame(node.callFrame) : undefined;
      frameKey.set(
        id,
        frame?.url.includes("/lambdas/")
          ? {
              key: `${frame.functionName}@${frame.url}:${frame.lineNumber}`,
              name: frame.functionName || "(anonymous)",
              where: `${shortUrl(frame.url)}:${frame.lineNumber + 1}`,
            }
          : null,
      );
    }
    return frameKey.get(id);
  };
  const totals = new Map<string, { name: string; where: string; us: number }>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = keyOf(at);
      if (!frame || seen.has(frame.key)) continue;
      seen.add(frame.key);
      const entry = totals.get(frame.key) ?? { name: frame.name, where: frame.where, us: 0 };
      entry.us += us;
      totals.set(frame.key, entry);
    }
  }
  return [...totals.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000 }));
}

/** Reads the single profile `node --cpu-prof --cpu-prof-dir=dir` wrote. */
export async function summariseDir(dir: string): Promise<ProfileSummary | undefined> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
  const file = files[0];
  if (!file) return undefined;
  const profile = JSON.parse(await readFile(join(dir, file), "utf8")) as CpuProfile;
  return summarise(profile);
}

export function formatSummary(summary: ProfileSummary): string {
  const pct = (s: number) => `${(s * 100).toFixed(1).padStart(5)}%`;
  const lines = [`  profiled ${(summary.totalMs / 1000).toFixed(2)} s of main-thread time:`];
  for (const c of summary.components) {
    if (c.share < 0.005) continue;
    lines.push(`    ${pct(c.share)}  ${(c.ms / 1000).toFixed(2).padStart(6)} s  ${c.name}`);
  }
  lines.push("  hottest functions (self time):");
  for (const f of summary.functions) {
    lines.push(`    ${pct(f.share)}  ${f.name}  ${f.where}`);
  }
  lines.push("  mail-ingest functions (inclusive time):");
  for (const f of summary.ours) {
    lines.push(`    ${pct(f.share)}  ${f.name}  ${f.where}`);
  }
  return lines.join("\n");
}
