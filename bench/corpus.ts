/**
 * The bench maildrop's content: the project's deterministic message generator, tuned so the
 * default 3000 messages come to about 101 MB with about 40% carrying attachments, matching the
 * corpus the anchor figures were measured on.
 */
import { generateMessage } from "../test/helpers/messages.ts";

/** Fixed so every run and every client sees byte-identical mail. */
export const CORPUS_SEED = 5;
/**
 * Decoded attachment sizes spread evenly over 10-114 kB (mean 62 kB) by message index, so the
 * corpus has small and large messages alike. Tuned by measurement: 3000 messages come to
 * about 101 MB (base64 adds a third on the wire).
 */
const ATTACHMENT_MIN_BYTES = 10_000;
const ATTACHMENT_STEPS = 105;
const ATTACHMENT_STEP_BYTES = 1_000;

export function corpusMessage(index: number): Buffer {
  // 7919 is prime and coprime with the step count, so consecutive messages jump around the range.
  const step = (index * 7919) % ATTACHMENT_STEPS;
  const attachmentBytes = ATTACHMENT_MIN_BYTES + step * ATTACHMENT_STEP_BYTES;
  return generateMessage(index, { attachmentBytes, seed: CORPUS_SEED });
}

/** Messages `from` .. `from + count - 1`, generated lazily so a batch is never all in memory. */
export function* corpusMessages(from: number, count: number): Generator<Buffer> {
  for (let i = from; i < from + count; i++) yield corpusMessage(i);
}
