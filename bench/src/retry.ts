// skewClock() with the retry the engine asks for: when a restore had to leave its (inactive) code
// in the target because a thread was still inside it, the next install answers EBUSY "try again"
// until that thread is out. The bench counts those retries and reports them.
import { type SkewHandle, type SkewOptions, skewClock } from '../../dist/index';
import { sleep } from './stats';

export interface RetryCounter {
  busyRetries: number;
}

/** Retries EBUSY for up to `budgetMs` (each attempt stops the target, and may drain it for a second). */
export async function skewRetrying(pid: number, options: SkewOptions, counter: RetryCounter, budgetMs = 10_000): Promise<SkewHandle> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    try {
      return await skewClock(pid, options);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EBUSY' || Date.now() > deadline) throw err;
      counter.busyRetries++;
      await sleep(25);
    }
  }
}
