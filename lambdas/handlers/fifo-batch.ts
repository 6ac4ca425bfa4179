/**
 * An SQS FIFO batch, processed with the queue's own guarantee and no stricter: records of one
 * message group (one mailbox) run one after another in order, and different groups run at once.
 * This is what lets one poller invocation poll several mailboxes concurrently (issue 9: an idle
 * poll is mostly waiting on the network, so ten of them side by side cost about what one does).
 *
 * When a record fails, it and every later record of its group are reported as batch item
 * failures, so SQS redelivers them in order; the other groups carry on (Powertools'
 * `skipGroupOnError`, which its FIFO processor offers only sequentially).
 */
import type { SQSBatchItemFailure, SQSRecord } from "aws-lambda";

export async function processFifoBatch(
  records: readonly SQSRecord[],
  handle: (record: SQSRecord) => Promise<void>,
): Promise<SQSBatchItemFailure[]> {
  const groups = new Map<string, SQSRecord[]>();
  for (const record of records) {
    // A standard queue's records have no group: each is its own.
    const key = record.attributes.MessageGroupId ?? `record:${record.messageId}`;
    const group = groups.get(key);
    if (group) group.push(record);
    else groups.set(key, [record]);
  }
  const failed = new Set<string>();
  await Promise.all(
    [...groups.values()].map(async (group) => {
      for (const [index, record] of group.entries()) {
        try {
          await handle(record);
        } catch {
          // The handler logs its own failures; what is left is to keep the group in order.
          for (const rest of group.slice(index)) failed.add(rest.messageId);
          return;
        }
      }
    }),
  );
  return records
    .filter((record) => failed.has(record.messageId))
    .map((record) => ({ itemIdentifier: record.messageId }));
}
