/**
 * A counting semaphore: at most `max` calls of `run()` in flight, the rest wait in FIFO order.
 * Used for the global cap on SSH handshakes and for the per-connection channel cap (which
 * shrinks with `resize()` when a server turns out to allow fewer sessions).
 */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private limit: number;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`Limiter: max must be a positive integer, got ${max}`);
    this.limit = max;
  }

  get max(): number {
    return this.limit;
  }

  /** Calls in flight now. */
  get inFlight(): number {
    return this.active;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Change the cap; calls already in flight finish, new ones start only below the new cap. */
  resize(max: number): void {
    if (!Number.isInteger(max) || max < 1) throw new Error(`Limiter: max must be a positive integer, got ${max}`);
    this.limit = max;
    this.pump();
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active < this.limit && this.waiting.length === 0) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // pump() counts us in
    try {
      return await fn();
    } finally {
      this.active--;
      this.pump();
    }
  }

  private pump(): void {
    while (this.active < this.limit && this.waiting.length > 0) {
      this.active++;
      this.waiting.shift()!();
    }
  }
}
