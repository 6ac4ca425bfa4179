/**
 * The ingestion bucket and its server access logs bucket. The ingestion bucket is versioned: once
 * a mailbox deletes after ingest (RFC 1939 §6 DELE), S3 holds the only copy of the mail, so an
 * overwrite or a delete must leave the previous version recoverable.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import type { IKey } from "aws-cdk-lib/aws-kms";
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectLockRetention,
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
  /** Noncurrent (overwritten or deleted) versions are expired after this long. */
  readonly noncurrentVersionExpiration: Duration;
  /** Object Lock in governance mode with this default retention; the bucket is created with it. */
  readonly objectLockRetention?: Duration;
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
    versioned: true,
    ...(options.objectLockRetention
      ? {
          // S3 sets Object Lock at bucket creation only, and only as a bucket-wide default: it
          // cannot be limited to `raw/`. Governance mode lets a principal with
          // s3:BypassGovernanceRetention remove a version early; compliance mode would not.
          objectLockEnabled: true,
          objectLockDefaultRetention: ObjectLockRetention.governance(options.objectLockRetention),
        }
      : {}),
    lifecycleRules: [
      {
        // Uploads interrupted by a Lambda timeout leave parts that are billed until aborted.
        abortIncompleteMultipartUploadAfter: Duration.days(1),
        expiration: options.objectExpiration,
        transitions,
        // State snapshots, deltas and leases are rewritten every poll; their old versions are
        // only a recovery window, not an archive.
        noncurrentVersionExpiration: options.noncurrentVersionExpiration,
      },
      {
        // A delete marker whose versions have all expired hides nothing; S3 keeps it unless told.
        expiredObjectDeleteMarker: true,
      },
    ],
  });
  return { bucket, accessLogsBucket: createdLogs };
}
