/** The ingestion bucket and its server access logs bucket. */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import type { IKey } from "aws-cdk-lib/aws-kms";
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectOwnership,
  StorageClass,
} from "aws-cdk-lib/aws-s3";
import type { Construct } from "constructs";

export interface StorageOptions {
  readonly bucket?: IBucket;
  /** SSE-KMS with this key for a new ingestion bucket; else SSE-S3. */
  readonly encryptionKey?: IKey;
  readonly objectExpiration?: Duration;
  readonly infrequentAccessAfter?: Duration;
  readonly accessLogsBucket?: IBucket;
  readonly accessLogsExpiration?: Duration;
  readonly removalPolicy?: RemovalPolicy;
}

export interface Storage {
  readonly bucket: IBucket;
  /** Only when this call created it. */
  readonly accessLogsBucket?: Bucket;
}

/** Private, TLS-only, owner-enforced buckets: the secure settings every bucket here shares. */
const SECURE_BUCKET = {
  blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
  enforceSSL: true,
  objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
} as const;

/** Returns the given bucket untouched, or creates one (and its access logs bucket). */
export function createStorage(scope: Construct, options: StorageOptions): Storage {
  if (options.bucket) return { bucket: options.bucket };
  const removalPolicy = options.removalPolicy ?? RemovalPolicy.RETAIN;
  let accessLogsBucket = options.accessLogsBucket;
  let createdLogs: Bucket | undefined;
  if (!accessLogsBucket) {
    createdLogs = new Bucket(scope, "AccessLogs", {
      // The S3 log delivery service only writes to SSE-S3 buckets.
      encryption: BucketEncryption.S3_MANAGED,
      ...SECURE_BUCKET,
      removalPolicy,
      lifecycleRules: [
        {
          expiration: options.accessLogsExpiration ?? Duration.days(90),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
    accessLogsBucket = createdLogs;
  }
  const transitions =
    options.infrequentAccessAfter === undefined
      ? undefined
      : [
          {
            storageClass: StorageClass.INFREQUENT_ACCESS,
            transitionAfter: options.infrequentAccessAfter,
          },
        ];
  const bucket = new Bucket(scope, "Bucket", {
    ...(options.encryptionKey
      ? {
          encryption: BucketEncryption.KMS,
          encryptionKey: options.encryptionKey,
          // S3 Bucket Keys: one KMS data key per bucket and period instead of one call per object.
          bucketKeyEnabled: true,
        }
      : { encryption: BucketEncryption.S3_MANAGED }),
    ...SECURE_BUCKET,
    removalPolicy,
    serverAccessLogsBucket: accessLogsBucket,
    serverAccessLogsPrefix: "bucket/",
    lifecycleRules: [
      {
        // Uploads interrupted by a Lambda timeout leave parts that are billed until aborted.
        abortIncompleteMultipartUploadAfter: Duration.days(1),
        expiration: options.objectExpiration,
        transitions,
      },
    ],
  });
  return { bucket, accessLogsBucket: createdLogs };
}
