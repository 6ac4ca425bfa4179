/**
 * `source.pipe(dest)` with `stream.pipeline`'s failure handling, for the one-source, one-sink
 * pipes on the per-message hot path. `pipeline` builds an AbortController per call and aborts it
 * when the pipe ends, which constructs a DOMException and captures its stack trace even on
 * success: about 60 µs each, 2 % of the main thread in a full drain (issue 14).
 */
import { finished, type Readable, type Writable } from "node:stream";

/**
 * Pipes `source` into `dest`, with backpressure. Resolves once `dest` has finished writing (a
 * Duplex `dest`'s readable side is the caller's to consume). If either side errors or closes
 * early, both are destroyed with that error and the promise rejects with it, as with
 * `stream.pipeline`: a source error reaches whoever reads `dest`, and a failed `dest` stops the
 * source.
 */
export function pipeInto(source: Readable, dest: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: Error | null): void => {
      if (settled) return;
      settled = true;
      if (!err) {
        resolve();
        return;
      }
      source.unpipe(dest);
      source.destroy(err);
      dest.destroy(err);
      reject(err);
    };
    // A source that ends normally is not news: dest finishing is. A source that errors, or
    // closes before its end, is. Both listeners stay for good, as pipeline()'s do: they take the
    // 'error' events of the destroys above, and of a stream destroyed with an error after the
    // pipe has finished, which would otherwise be uncaught.
    finished(source, { writable: false }, (err) => {
      if (err) settle(err);
    });
    finished(dest, { readable: false }, settle);
    source.pipe(dest);
  });
}
