/**
 * A small async pool: run `fn` over `items` with at most `limit` calls in flight, in order of
 * the items. When `signal` is aborted no new item is started; the running ones are awaited.
 * If a call throws, no new item is started either, the running ones are awaited, and the first
 * error is rethrown.
 */
export async function forEachLimit<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  const max = Math.max(1, Math.floor(Number.isFinite(limit) ? limit : items.length || 1));
  let next = 0;
  let failed = false;
  let firstError: unknown;

  async function worker(): Promise<void> {
    while (!failed && !signal?.aborted && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        if (!failed) {
          failed = true;
          firstError = err;
        }
      }
    }
  }

  const workers: Promise<void>[] = [];
  for (let i = 0; i < Math.min(max, items.length); i++) workers.push(worker());
  await Promise.all(workers);
  if (failed) throw firstError;
}
