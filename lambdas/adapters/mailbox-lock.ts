/**
 * Per-key promise chains: operations on one mailbox's state run one after another within this
 * process (a load's compaction must not interleave with a record's append). This is not a lock
 * across processes: the POP3 server need not lock the maildrop (Dovecot's `pop3_lock_session`
 * defaults to no; RFC 1939 §4 locks the maildrop only "as necessary"). One writer per mailbox across
 * processes comes from the MailboxLock port the session holds (fs-lock.ts, object-lease.ts).
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
