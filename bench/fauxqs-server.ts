/**
 * fauxqs (S3 + SQS emulator) in its own process for the S3/SQS bench case, so the emulator's
 * CPU is not charged to mail-ingest and does not steal its event loop. It counts the S3 object
 * writes each bucket received, for the bench's "S3 PUTs per message".
 */
import { startFauxqs } from "../test/helpers/fauxqs.ts";
import { serve } from "./child-rpc.ts";

/** S3 object writes one bucket received, by the key's first segment (raw, parts, meta, state). */
export interface BucketPuts {
  bucket: string;
  /** PutObject and UploadPart requests: what S3 bills as PUTs, one per part. */
  puts: number;
  byPrefix: Record<string, number>;
}

const counts = new Map<string, BucketPuts>();
let lastBucket: string | undefined;

/** Path-style S3 URLs: `/{bucket}/{key}?…`. A PUT with a key writes an object or a part. */
function countRequest(method: string, url: string): void {
  if (method !== "PUT") return;
  const [path = ""] = url.split("?");
  const [bucket, top] = path.replace(/^\//, "").split("/");
  const entry = bucket ? counts.get(bucket) : undefined;
  if (!entry || top === undefined || top === "") return;
  entry.puts += 1;
  entry.byPrefix[top] = (entry.byPrefix[top] ?? 0) + 1;
}

// Conditional PUTs as S3 has them: the S3 lease (CLI and poller) relies on them.
const fauxqs = await startFauxqs({ onRequest: countRequest, conditionalPuts: true });

const server = serve(
  {
    /** A fresh bucket and queue per measured run, so no run sees another's objects. */
    async create() {
      const bucket = await fauxqs.createBucket();
      const queueUrl = await fauxqs.createQueue();
      counts.set(bucket, { bucket, puts: 0, byPrefix: {} });
      lastBucket = bucket;
      return { bucket, queueUrl };
    },
    /** The S3 object writes of the bucket created last (the latest run's). */
    async lastBucketPuts() {
      return lastBucket ? counts.get(lastBucket) : undefined;
    },
  },
  () => fauxqs.stop(),
);
server.ready({ endpoint: fauxqs.endpoint, region: fauxqs.region });
