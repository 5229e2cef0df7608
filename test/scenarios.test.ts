// Scenarios built on live updates (issue 5, item 5): strobe flips a victim's clock between real and
// real + delta (seen by sampling the victim many times), jump moves it from wherever it is.
import { afterEach, describe, expect, it } from 'vitest';
import { TimeSkewError, inspectClock, jump, skewClock, strobe } from '../lib/index';
import { closeAllModelVictims, rateOf, skewOf, spawnModelVictim } from './support/model-victim';

afterEach(closeAllModelVictims);

const SECOND = 1_000_000_000n;
const MS = 1_000_000n;
const abs = (x: bigint): bigint => (x < 0n ? -x : x);

/** Sorts skews into "real" (near 0) and "skewed" (near delta); anything else is a stray. */
function classify(skews: bigint[], delta: bigint, slack: bigint) {
  const real = skews.filter((s) => abs(s) <= slack).length;
  const skewed = skews.filter((s) => abs(s - delta) <= slack).length;
  return { real, skewed, stray: skews.length - real - skewed };
}

async function rejection(promise: Promise<unknown>): Promise<TimeSkewError> {
  const err = await promise.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TimeSkewError);
  return err as TimeSkewError;
}

describe('strobe', () => {
  it('flips between real and real + delta every period, then restores after duration', async () => {
    const victim = await spawnModelVictim();
    const delta = 200n * MS;
    const s = await strobe(victim.pid, { delta: '200ms', period: '50ms', duration: '1.2s' });
    expect(s.running).toBe(true);
    expect(s.skew.mode.clock_gettime).toBe('trampoline');
    // 150 samples 5 ms apart: 750 ms, about 15 periods.
    const skews = await victim.sample('realtime', 150, 5000);
    const seen = classify(skews, delta, MS);
    console.info(`strobe samples: ${seen.real} real, ${seen.skewed} skewed, ${seen.stray} other; flips so far ${s.flips}`);
    expect(seen.stray).toBe(0);
    expect(seen.real).toBeGreaterThan(30);
    expect(seen.skewed).toBeGreaterThan(30);
    // Runs of one state: about period / sample interval = 10 samples; never one flip per sample.
    let runs = 1;
    for (let i = 1; i < skews.length; i++) if ((abs(skews[i]!) <= MS) !== (abs(skews[i - 1]!) <= MS)) runs++;
    expect(runs).toBeGreaterThan(8);
    expect(runs).toBeLessThan(30);

    await s.finished;
    expect(s.running).toBe(false);
    expect(s.flips).toBeGreaterThanOrEqual(18);
    expect(s.flips).toBeLessThanOrEqual(24);
    expect(await inspectClock(victim.pid)).toBeNull();
    expect(abs(skewOf(await victim.read('realtime')))).toBeLessThan(MS);
    await s.restore(); // already over: a no-op
  });

  it('restore() stops it early and restores the clock; it never re-injects', async () => {
    const victim = await spawnModelVictim();
    const s = await strobe(victim.pid, { delta: -5n * SECOND, period: '20ms', clockIds: ['CLOCK_MONOTONIC'] });
    const installReport = s.skew.lastReport;
    const skews = await victim.sample('monotonic', 40, 5000);
    const seen = classify(skews, -5n * SECOND, MS);
    expect(seen.stray).toBe(0);
    expect(seen.real).toBeGreaterThan(5);
    expect(seen.skewed).toBeGreaterThan(5);
    expect(s.skew.lastReport).toBe(installReport); // updates only: no new install report
    await Promise.all([s.restore(), s.restore()]);
    const flips = s.flips;
    expect(await inspectClock(victim.pid)).toBeNull();
    await new Promise((r) => setTimeout(r, 100));
    expect(s.flips).toBe(flips);
    const after = await victim.sample('monotonic', 10, 2000);
    expect(classify(after, -5n * SECOND, MS).real).toBe(10);
  });

  it('ends quietly when the target exits', async () => {
    const victim = await spawnModelVictim();
    const s = await strobe(victim.pid, { delta: '1s', period: '10ms' });
    victim.child.kill('SIGKILL');
    await s.finished;
    expect(s.running).toBe(false);
    await s.restore();
  });

  it('checks its options before touching the process', async () => {
    const victim = await spawnModelVictim();
    expect((await rejection(strobe(victim.pid, { delta: '1s' } as never))).message).toContain('period');
    expect((await rejection(strobe(victim.pid, { delta: '1s', period: '100us' }))).message).toContain('too short');
    expect((await rejection(strobe(victim.pid, { delta: '1 s', period: '1s' }))).message).toContain('delta');
    expect((await rejection(strobe(victim.pid, { delta: '1s', period: '1s', duration: '-1s' }))).message).toContain('negative');
    expect((await rejection(strobe(victim.pid, { delta: '1s', period: '1s', rate: 2 } as never))).message).toContain('"rate"');
    expect((await rejection(strobe(victim.pid, { delta: '1s', period: '1s', clockIds: ['CLOCK_X' as never] }))).code).toBe('EINVAL');
    expect(await inspectClock(victim.pid)).toBeNull();
  });
});

describe('jump', () => {
  it('installs an offset on a process without a skew, then moves an existing skew by `by`', async () => {
    const victim = await spawnModelVictim();
    const first = await jump(victim.pid, { by: '10m' });
    expect(first.offsets).toEqual({ CLOCK_REALTIME: 600n * SECOND });
    expect(abs(skewOf(await victim.read('realtime')) - 600n * SECOND)).toBeLessThan(MS);

    // A second jump finds the skew in the process (whoever installed it) and moves it.
    const second = await jump(victim.pid, { by: '-1h' });
    expect(second.offsets).toEqual({ CLOCK_REALTIME: -3000n * SECOND });
    expect(abs(skewOf(await victim.read('realtime')) + 3000n * SECOND)).toBeLessThan(MS);

    // The handle's own jump, exact at rate 1.
    await second.jump('1.5s');
    expect(second.offsets.CLOCK_REALTIME).toBe(-2998_500_000_000n);
    expect(abs(skewOf(await victim.read('realtime')) + 2998_500_000_000n)).toBeLessThan(MS);
    await second.restore();
    expect(await inspectClock(victim.pid)).toBeNull();
  });

  it('keeps the rate and moves every skewed clock, or only the ones named', async () => {
    const victim = await spawnModelVictim();
    const handle = await skewClock(victim.pid, { offsets: { CLOCK_REALTIME: '1h', CLOCK_MONOTONIC: '1m' }, rate: 2 });
    const before = await victim.read('realtime');
    await handle.jump('-30m');
    const after = await victim.read('realtime');
    // The skew grows by (rate - 1) x the real time in between, and jumped by -30 min.
    const drift = after.a - before.b + (after.b - after.a) + (before.b - before.a);
    expect(abs(skewOf(after) - skewOf(before) + 1800n * SECOND)).toBeLessThanOrEqual(drift);
    // Every skewed clock moved: CLOCK_MONOTONIC too (1 min - 30 min, plus its drift since install).
    expect(abs(skewOf(await victim.read('monotonic')) + 1740n * SECOND)).toBeLessThan(SECOND);
    expect(handle.rate).toBe(2);
    const m = rateOf(await victim.measure('realtime', 500), 2);
    expect(Math.abs(m.rate - 2)).toBeLessThan(1e-6);

    const mono = await victim.read('monotonic');
    await handle.jump('10s', ['CLOCK_MONOTONIC', 'CLOCK_BOOTTIME']);
    const mono2 = await victim.read('monotonic');
    expect(abs(skewOf(mono2) - skewOf(mono) - 10n * SECOND)).toBeLessThan(100n * MS);
    expect(abs(skewOf(await victim.read('boottime')) - 10n * SECOND)).toBeLessThan(100n * MS);
    expect(handle.clockIds).toEqual(['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_BOOTTIME']);
    await handle.restore();
  });

  it('rejects a missing or malformed `by`', async () => {
    const victim = await spawnModelVictim();
    expect((await rejection(jump(victim.pid, {} as never))).message).toContain('by');
    expect((await rejection(jump(victim.pid, { by: 'soon' }))).message).toContain('by');
    expect(await inspectClock(victim.pid)).toBeNull();
  });
});
