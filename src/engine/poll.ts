/**
 * Poll until something holds, a deadline passes or the run is interrupted: the one waiting loop
 * of the reboot coordinator (quorum before a reboot, guests stopping, the host coming back, the
 * cluster quorate again).
 */

export interface PollOptions {
  /** Time (of `now`) after which no further attempt is made. An attempt is always made first. */
  deadline: number;
  /** Pause between attempts; the last pause is cut to end at the deadline. */
  intervalMs: number;
  now?: () => number;
  /** Checked after each attempt that did not succeed; an abort also cuts a pause short. */
  signal?: AbortSignal;
  /** Called once, after the first attempt that did not succeed and before the first pause. */
  onWait?: () => void;
}

export type PollResult<T> = { status: 'done'; value: T } | { status: 'timeout' } | { status: 'aborted' };

/**
 * Calls `attempt` until it returns a value other than undefined (`done`), then returns it. After
 * an attempt that returned undefined: past the deadline → `timeout`; signal aborted → `aborted`;
 * otherwise a pause of `intervalMs` and the next attempt. An attempt that throws ends the poll
 * with that error: attempts that may fail for a while catch their own errors.
 */
export async function pollUntil<T>(attempt: () => Promise<T | undefined>, o: PollOptions): Promise<PollResult<T>> {
  const now = o.now ?? Date.now;
  for (let first = true; ; first = false) {
    const value = await attempt();
    if (value !== undefined) return { status: 'done', value };
    if (now() >= o.deadline) return { status: 'timeout' };
    if (o.signal?.aborted) return { status: 'aborted' };
    if (first) o.onWait?.();
    await pause(Math.min(o.intervalMs, o.deadline - now()), o.signal);
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}
