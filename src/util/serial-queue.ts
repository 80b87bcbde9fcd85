/**
 * Runs async jobs one at a time, in submission order. Each IKE SA owns one,
 * so an `await` on the kernel can never interleave two messages of one SA.
 * A failing job does not stop the queue; its error goes to the caller.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private depth = 0;

  get pending(): number {
    return this.depth;
  }

  run<T>(job: () => Promise<T> | T): Promise<T> {
    this.depth++;
    const result = this.tail.then(job);
    this.tail = result.then(
      () => {
        this.depth--;
      },
      () => {
        this.depth--;
      },
    );
    return result;
  }

  /** Resolves once every job submitted so far has finished. */
  idle(): Promise<void> {
    return this.tail;
  }
}
