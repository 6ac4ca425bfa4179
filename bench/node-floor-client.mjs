#!/usr/bin/env node
/**
 * The bench's "node floor" (issue 14): the least work a Node client can do for mail-ingest's
 * contract, with none of mail-ingest's structure. It is the floor client's transport
 * (floor-transport.mjs: UIDL, then every RETR pipelined) plus, for every message, only what the contract makes mandatory:
 * - sha256 of the raw bytes;
 * - the raw stored create-only and durable: temp file, write, fdatasync, close, link, unlink;
 * - a streaming `MailParser` parse with mail-ingest's options, each attachment written to its own
 *   durable file as it is decoded;
 * - a metadata JSON written durably (temp, fdatasync, rename) and linked into a queue directory;
 * - every 20 messages: each directory fsynced, then the batch's UIDLs appended to a state log
 *   (`state.log`, one per line) and fdatasynced. A run fetches only the UIDLs that log lacks, so
 *   the floor also has an incremental poll.
 *
 * It cuts corners mail-ingest may not, so it is a lower bound, not a competitor: a message is
 * collected in memory before it is stored (no stream, no backpressure), dot-stuffing is not undone,
 * there are no limits, no error handling beyond failing the run, one flat directory per kind, and
 * the metadata is mailparser's fields as they come. Plain JS, so its start-up is Node's plus
 * mailparser's load (the CLI's vendored bundle with its code cache, as the CLI loads it).
 *
 * Variants, to take the floor apart (environment variables):
 * - NODE_FLOOR_PARSE=0: no MIME parse (the metadata is the id alone);
 * - NODE_FLOOR_SYNC=0: no fdatasync at all (what durability costs);
 * - NODE_FLOOR_WORKERS=N: the parse runs in N worker threads (the raw bytes are copied there, the
 *   attachments' bytes come back with the metadata).
 *
 * Usage: node bench/node-floor-client.mjs HOST PORT TLS(none|implicit) CA_FILE|- USER DATA_DIR
 * (the transport and its arguments: floor-transport.mjs)
 * The password comes from FLOOR_PASSWORD. Prints one JSON line: {"messages": N, "bytes": B}.
 */
import { createHash, randomBytes } from "node:crypto";
import { closeSync, fdatasync, mkdirSync, openSync, readFileSync } from "node:fs";
import { link, open, rename, unlink } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import { connectionArgs, drain, failWith, TERMINATOR } from "./floor-transport.mjs";

function collect(stream) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => resolve(Buffer.concat(chunks)));
    stream.on("error", reject);
  });
}

let mailparser;

/**
 * mailparser, loaded once, the fastest way there is: once `npm run build` has made them, the
 * CLI's vendored bundle and its V8 code cache (`dist/cli/mailparser.cjs`), run by the CLI's own
 * runner (`dist/lambdas/util/vendored.js`); else node_modules.
 */
function loadMailparser() {
  mailparser ??= (async () => {
    const dist = new URL("../dist/", import.meta.url);
    try {
      const { loadVendored } = await import(new URL("lambdas/util/vendored.js", dist).href);
      const vendored = loadVendored(fileURLToPath(new URL("cli/mailparser.cjs", dist)));
      if (vendored) return vendored.module;
    } catch (err) {
      if (err.code !== "ERR_MODULE_NOT_FOUND") throw err;
    }
    return createRequire(import.meta.url)("mailparser");
  })();
  return mailparser;
}

/** mailparser's fields as they come, plus each attachment's decoded bytes. */
async function parse(raw) {
  const { MailParser } = await loadMailparser();
  const parser = new MailParser({
    ignoreEmbedded: true,
    checksumAlgo: false,
    skipTextToHtml: true,
    skipTextLinks: true,
    skipImageLinks: true,
  });
  const meta = { attachments: [] };
  const contents = [];
  parser.on("headers", (headers) => {
    meta.subject = headers.get("subject");
    meta.messageId = headers.get("message-id");
    meta.date = headers.get("date");
    meta.from = headers.get("from")?.value;
    meta.to = headers.get("to")?.value;
  });
  parser.on("data", (data) => {
    if (data.type === "text") {
      meta.text = data.text;
      meta.html = data.html;
    } else {
      meta.attachments.push({ filename: data.filename, contentType: data.contentType });
      contents.push(collect(data.content).finally(() => data.release()));
    }
  });
  await new Promise((resolve, reject) => {
    parser.on("end", resolve);
    parser.on("error", reject);
    parser.end(raw);
  });
  return { meta, attachments: await Promise.all(contents) };
}

if (!isMainThread) {
  parentPort.on("message", async ({ seq, raw }) => {
    const parsed = await parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
    // Copied back, not transferred: a small Buffer may share Node's pool with others.
    parentPort.postMessage({ seq, ...parsed });
  });
} else {
  main();
}

function main() {
  const connection = connectionArgs(process.argv.slice(2));
  const [dataDir] = connection.rest;
  if (!dataDir) {
    process.stderr.write("node-floor-client: DATA_DIR missing\n");
    process.exit(2);
  }
  const PARSE = process.env.NODE_FLOOR_PARSE !== "0";
  const SYNC = process.env.NODE_FLOOR_SYNC !== "0";
  const WORKERS = Number(process.env.NODE_FLOOR_WORKERS ?? 0);
  const datasync = SYNC ? promisify(fdatasync) : async () => {};

  const DIRS = ["raw", "parts", "meta", "queue", "tmp"].map((d) => join(dataDir, d));
  const [RAW, PARTS, META, QUEUE, TMP] = DIRS;
  for (const dir of DIRS) mkdirSync(dir, { recursive: true });
  const CHECKPOINT_EVERY = 20;
  const fail = failWith("node-floor-client");
  const STATE = join(dataDir, "state.log");
  /** UIDLs stored by earlier runs. */
  const known = new Set();
  try {
    for (const uidl of readFileSync(STATE, "latin1").split("\n")) if (uidl) known.add(uidl);
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  /** The UIDLs of the messages RETRed, in order (the responses arrive in the same order). */
  let selected = [];

  /** Writes `data` durably under a temp name; returns the temp path. */
  async function durableTemp(data) {
    const tmp = join(TMP, randomBytes(8).toString("hex"));
    const fh = await open(tmp, "wx");
    try {
      await fh.write(data);
      await datasync(fh.fd);
    } finally {
      await fh.close();
    }
    return tmp;
  }

  async function putCreateOnly(path, data) {
    const tmp = await durableTemp(data);
    try {
      await link(tmp, path);
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
    await unlink(tmp);
  }

  async function putReplace(path, data) {
    await rename(await durableTemp(data), path);
  }

  const pool = [];
  const waiting = new Map();
  let nextSeq = 0;
  for (let i = 0; i < WORKERS; i++) {
    const worker = new Worker(new URL(import.meta.url));
    worker.on("message", (reply) => {
      waiting.get(reply.seq)(reply);
      waiting.delete(reply.seq);
    });
    worker.on("error", (err) => fail(`worker: ${err.message}`));
    worker.unref();
    pool.push(worker);
  }

  function parseSomewhere(raw) {
    if (!PARSE) return Promise.resolve({ meta: {}, attachments: [] });
    if (pool.length === 0) return parse(raw);
    const seq = nextSeq++;
    return new Promise((resolve) => {
      waiting.set(seq, resolve);
      pool[seq % pool.length].postMessage({ seq, raw });
    });
  }

  let pendingSinceCheckpoint = [];
  let stored = 0;
  let checkpoint = Promise.resolve();

  async function ingest(raw, uidl) {
    const id = createHash("sha256").update(raw).digest("hex");
    const [, parsed] = await Promise.all([
      putCreateOnly(join(RAW, `${id}.eml`), raw),
      parseSomewhere(raw),
    ]);
    const meta = { id, ...parsed.meta };
    await Promise.all(
      parsed.attachments.map((bytes, index) => {
        meta.attachments[index].sha256 = createHash("sha256").update(bytes).digest("hex");
        return putCreateOnly(join(PARTS, `${id}-${index}`), bytes);
      }),
    );
    const metaPath = join(META, `${id}.json`);
    await putReplace(metaPath, JSON.stringify(meta));
    await link(metaPath, join(QUEUE, `${id}.json`)).catch((err) => {
      if (err.code !== "EEXIST") throw err;
    });
    stored++;
    pendingSinceCheckpoint.push(uidl);
    if (pendingSinceCheckpoint.length >= CHECKPOINT_EVERY) {
      const uidls = pendingSinceCheckpoint;
      pendingSinceCheckpoint = [];
      checkpoint = checkpoint.then(() => commit(uidls));
    }
  }

  async function commit(uidls) {
    await Promise.all(
      DIRS.map(async (dir) => {
        const fd = openSync(dir, "r");
        try {
          await datasync(fd);
        } finally {
          closeSync(fd);
        }
      }),
    );
    if (uidls.length === 0) return;
    const fh = await open(STATE, "a");
    try {
      await fh.write(`${uidls.join("\n")}\n`);
      await datasync(fh.fd);
    } finally {
      await fh.close();
    }
  }

  /** Chunks of the response being received (status line included), and its last 4 bytes. */
  let current = [];
  let tail = Buffer.alloc(0);
  const inFlight = [];
  /** Responses finished so far: the index into `selected`. */
  let finished = 0;

  function finishMessage() {
    const all = Buffer.concat(current);
    current = [];
    const bodyStart = all.indexOf("\r\n") + 2;
    const raw = all.subarray(bodyStart, all.length - 3);
    const uidl = selected[finished++];
    inFlight.push(ingest(raw, uidl).catch((err) => fail(`ingest: ${err.message}`)));
  }

  /**
   * Splits `chunk` at message terminators. The chunk is searched behind the response's last 4
   * bytes, so a terminator split across reads is found, and each byte is searched and copied once
   * (joining the whole response so far on every chunk would be quadratic in its size).
   */
  function onRetrData(chunk) {
    let ended = 0;
    const probe = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
    /** Where in `chunk` the response not yet finished begins. */
    let start = 0;
    // A response starts with "+OK", so a terminator never begins before the response it ends.
    for (
      let at = probe.indexOf(TERMINATOR);
      at >= 0;
      at = probe.indexOf(TERMINATOR, at + TERMINATOR.length)
    ) {
      const end = at + TERMINATOR.length - tail.length;
      current.push(chunk.subarray(start, end));
      finishMessage();
      ended++;
      start = end;
    }
    const unfinished = ended > 0 ? chunk.subarray(start) : probe;
    if (start < chunk.length) current.push(chunk.subarray(start));
    tail = unfinished.subarray(Math.max(0, unfinished.length - TERMINATOR.length + 1));
    return ended;
  }

  drain(connection, {
    name: "node-floor-client",
    onRetrData,
    select: (listing) => {
      const fresh = listing.filter((entry) => !known.has(entry.uidl));
      selected = fresh.map((entry) => entry.uidl);
      return fresh;
    },
    beforeQuit: () =>
      Promise.all(inFlight)
        .then(() => checkpoint)
        .then(() => commit(pendingSinceCheckpoint)),
  }).then((report) => {
    process.stdout.write(`${JSON.stringify({ ...report, messages: stored })}\n`);
  });
}
