/**
 * fauxqs (S3 + SQS emulator) in its own process for the S3/SQS bench case, so the emulator's
 * CPU is not charged to mail-ingest and does not steal its event loop.
 */
import { startFauxqs } from "../test/helpers/fauxqs.ts";
import { serve } from "./child-rpc.ts";

const fauxqs = await startFauxqs();

const server = serve(
  {
    /** A fresh bucket and queue per measured run, so no run sees another's objects. */
    async create() {
      const bucket = await fauxqs.createBucket();
      const queueUrl = await fauxqs.createQueue();
      return { bucket, queueUrl };
    },
  },
  () => fauxqs.stop(),
);
server.ready({ endpoint: fauxqs.endpoint, region: fauxqs.region });
