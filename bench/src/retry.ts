// skewClock() with the retry the engine asks for: when a restore had to leave its (inactive) code
// in the target because a thread was still inside it, the next install answers EBUSY "try again"
// until that thread is out. The bench counts those retries and reports them.
import { type SkewHandle, type SkewOptions, skewClock } from '../../dist/index';
import { sleep } from './stats';

export interface RetryCounter {
  busyRetries: number;
}

export async function skewRetrying(pid: number, options: SkewOptions, counter: RetryCounter): Promise<SkewHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await skewClock(pid, options);
    } catch (err) {
      if ((err as { code?: string }).code !== 'EBUSY' || attempt >= 40) throw err;
      counter.busyRetries++;
      await sleep(25);
    }
  }
}
