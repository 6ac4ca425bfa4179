/**
 * Per-key promise chains: operations on one mailbox's state run one after another within this
 * process (a load's compaction must not interleave with a record's append). Across processes the
 * POP3 maildrop lock (RFC 1939 §8: the server locks the maildrop for one session) already ensures a
 * single writer per mailbox.
 */
export class KeyedSerializer {
  /** The tail of each key's chain; removed once it settles with nothing queued behind it. */
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
