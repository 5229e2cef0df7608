// 3. Live update. A target with one thread spinning on the clock (and its main thread waiting for
// commands) is skewed once, then updated many times. Reported: the latency of update() as the
// caller sees it, next to the latency of an empty round trip through the same libuv thread pool;
// whether the target was stopped (voluntary context switches of its threads, and the longest gap
// between two consecutive clock reads of the spinning thread, against idle windows and against a
// window holding a real stop: restore + skew).
import { access } from 'node:fs/promises';
import type { SkewHandle } from '../../dist/index';
import { skewRetrying } from './retry';
import { type Summary, nowNs, sleep, summarize } from './stats';
import { type EnginePath, Victim, voluntarySwitches } from './victim';

export interface UpdateOptions {
  updates: number;
  windows: number;
  updatesPerWindow: number;
}

export interface UpdateResult {
  path: EnginePath;
  busyRetries: number;
  targetThreads: number;
  updates: number;
  latencyNs: Summary;
  /** Same thread pool, no work: the floor under any asynchronous native call. */
  threadPoolRoundTripNs: Summary;
  /** Voluntary switches of the target's threads across all timed updates (0 = never stopped). */
  switchesDuringUpdates: number;
  /** The same count across one restore + skew, to show what a stop looks like. */
  switchesDuringStop: number;
  gapNs: { idle: Summary; updates: Summary; restoreAndSkew: Summary };
  /** The offset the target read after the last update, seconds (expected -600 or -660). */
  offsetAfterSec: number;
  expectedOffsetSec: number;
}

async function gap(victim: Victim): Promise<number> {
  const line = await victim.request('gap');
  return Number(line.split(' ')[1]);
}

export async function runUpdate(path: EnginePath, options: UpdateOptions, log: (msg: string) => void): Promise<UpdateResult> {
  log(`update: ${options.updates} updates, target ${path === 'helper' ? 'a child of the bench' : 'not a child'}`);
  const { victim } = await Victim.start(['serve'], { placement: path === 'in-process' ? 'grandchild' : 'child' });
  try {
    await victim.request('spin1');
    await sleep(100);
    const counter = { busyRetries: 0 };
    let handle: SkewHandle = await skewRetrying(victim.pid, { offset: '-10m' }, counter);

    const pool: number[] = [];
    for (let i = 0; i < Math.min(options.updates, 2000); i++) {
      const t0 = nowNs();
      await access('/');
      pool.push(nowNs() - t0);
    }

    // Warm-up, then the timed run with the switch count around it.
    for (let i = 0; i < 50; i++) await handle.update({ offset: i % 2 ? '-10m' : '-11m' });
    const latencies: number[] = [];
    const before = voluntarySwitches(victim.pid).voluntary;
    let last = '-10m';
    for (let i = 0; i < options.updates; i++) {
      last = i % 2 ? '-10m' : '-11m';
      const t0 = nowNs();
      await handle.update({ offset: last });
      latencies.push(nowNs() - t0);
    }
    await sleep(20);
    const switchesDuringUpdates = voluntarySwitches(victim.pid).voluntary - before;
    const now = await victim.request('now');
    const rt = Number(/ realtime=(-?\d+)/.exec(now)![1]);
    const raw = Number(/raw_realtime=(-?\d+)/.exec(now)![1]);

    // Gap windows. Commands to the victim wake its main thread, so they stay outside the windows.
    const gaps = { idle: [] as number[], updates: [] as number[], restoreAndSkew: [] as number[] };
    let switchesDuringStop = 0;
    for (let w = 0; w < options.windows; w++) {
      await victim.request('gapreset');
      const t0 = nowNs();
      for (let i = 0; i < options.updatesPerWindow; i++) await handle.update({ offset: i % 2 ? '-10m' : '-11m' });
      const windowNs = nowNs() - t0;
      gaps.updates.push(await gap(victim));

      await victim.request('gapreset');
      await sleep(Math.max(1, Math.round(windowNs / 1e6)));
      gaps.idle.push(await gap(victim));

      // A real stop, for comparison: restore + skew (only a few times: each may drain for a second).
      if (w < 3) {
        await victim.request('gapreset');
        await sleep(20);
        const s0 = voluntarySwitches(victim.pid).voluntary;
        await handle.restore();
        handle = await skewRetrying(victim.pid, { offset: '-10m' }, counter);
        await sleep(20);
        if (w === 0) switchesDuringStop = voluntarySwitches(victim.pid).voluntary - s0;
        gaps.restoreAndSkew.push(await gap(victim));
      }
    }
    await handle.restore();
    return {
      path: victim.path,
      busyRetries: counter.busyRetries,
      targetThreads: voluntarySwitches(victim.pid).threads,
      updates: options.updates,
      latencyNs: summarize(latencies),
      threadPoolRoundTripNs: summarize(pool),
      switchesDuringUpdates,
      switchesDuringStop,
      gapNs: { idle: summarize(gaps.idle), updates: summarize(gaps.updates), restoreAndSkew: summarize(gaps.restoreAndSkew) },
      offsetAfterSec: (rt - raw) / 1e9,
      expectedOffsetSec: last === '-10m' ? -600 : -660,
    };
  } finally {
    await victim.close();
  }
}
