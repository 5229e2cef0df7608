// The core promise on every runtime: the victim's own clock moves by the offset, a sibling copy
// of the same program does not, and restore brings the victim back.
import { afterEach, describe, expect, it } from 'vitest';
import { inspectClock, skewClock } from '../lib/index';
import {
  DEFAULT_SLACK_NS,
  closeAllVictims,
  expectWithin,
  realNowNs,
  spawnVictim,
  type Victim,
  type VictimKind,
} from './support/victim';

afterEach(closeAllVictims);

const SECOND = 1_000_000_000n;
const TEN_MINUTES_BACK = -600n * SECOND;
const THREE_DAYS = 3n * 86_400n * SECOND;

// The keys each victim reports that are views of the realtime clock.
const realtimeKeys: Record<VictimKind, string[]> = {
  c: ['realtime', 'gettimeofday'],
  go: ['realtime'],
  python: ['realtime'],
  node: ['datenow'],
};

async function expectOffset(v: Victim, offset: bigint): Promise<void> {
  const before = realNowNs();
  const r = await v.now();
  const after = realNowNs();
  for (const key of realtimeKeys[v.kind]) {
    expectWithin(r[key] - offset, before, after, DEFAULT_SLACK_NS, `${v.kind} ${key}`);
  }
  // time() returns whole seconds from the coarse clock and gets the floor of the offset.
  if (r.time !== undefined) {
    expectWithin(r.time - offset, before - 2n * SECOND, after, DEFAULT_SLACK_NS, `${v.kind} time`);
  }
}

describe.each(['c', 'go', 'python', 'node'] as const)('%s victim', (kind) => {
  it('reads -600 s, then +3 days, then the real time again; its sibling never moves', async () => {
    const [victim, sibling] = await Promise.all([spawnVictim(kind), spawnVictim(kind)]);
    await expectOffset(victim, 0n);

    const handle = await skewClock(victim.pid, { sec: -600 });
    expect(handle.mode).toEqual({ clock_gettime: 'trampoline', gettimeofday: 'trampoline', time: 'trampoline' });
    await expectOffset(victim, TEN_MINUTES_BACK);
    await expectOffset(sibling, 0n);

    await handle.update({ offset: '72h' });
    expect(handle.offsetNs).toBe(THREE_DAYS);
    await expectOffset(victim, THREE_DAYS);
    await expectOffset(sibling, 0n);

    await handle.restore();
    await expectOffset(victim, 0n);
    await expectOffset(sibling, 0n);
    expect(await inspectClock(victim.pid)).toBeNull();
  });

  it('replaces an installed skew with replace: true', async () => {
    const victim = await spawnVictim(kind);
    const first = await skewClock(victim.pid, { sec: -600 });
    const second = await skewClock(victim.pid, { offset: THREE_DAYS, replace: true });
    await expectOffset(victim, THREE_DAYS);
    await second.restore();
    await expectOffset(victim, 0n);
    await first.restore(); // nothing left to remove: resolves quietly
  });
});

describe('clock selection', () => {
  const monotonicNs = (): bigint => process.hrtime.bigint();

  it('skewing CLOCK_MONOTONIC alone leaves the realtime clock exact', async () => {
    const victim = await spawnVictim('c');
    const handle = await skewClock(victim.pid, { sec: 5, clockIds: ['CLOCK_MONOTONIC'] });
    const before = monotonicNs();
    const realBefore = realNowNs();
    const r = await victim.now();
    const after = monotonicNs();
    const realAfter = realNowNs();
    expectWithin(r.monotonic - 5n * SECOND, before, after, DEFAULT_SLACK_NS, 'monotonic');
    expectWithin(r.realtime, realBefore, realAfter, DEFAULT_SLACK_NS, 'realtime');
    expectWithin(r.gettimeofday, realBefore, realAfter, DEFAULT_SLACK_NS, 'gettimeofday');
    // The raw and coarse monotonic clocks are separate clock ids: not selected, not moved.
    expectWithin(r.monotonic_raw, 0n, after, 0n, 'monotonic_raw');
    await handle.restore();
  });

  it('skewing CLOCK_REALTIME alone leaves the monotonic clock exact', async () => {
    const victim = await spawnVictim('c');
    const handle = await skewClock(victim.pid, { sec: -600 });
    const before = monotonicNs();
    const r = await victim.now();
    const after = monotonicNs();
    expectWithin(r.monotonic, before, after, DEFAULT_SLACK_NS, 'monotonic');
    expectWithin(r.boottime, 0n, r.monotonic + SECOND * 86_400n * 365n, 0n, 'boottime');
    await handle.restore();
  });

  it('skews a Node process.hrtime only when CLOCK_MONOTONIC is chosen', async () => {
    const victim = await spawnVictim('node');
    const handle = await skewClock(victim.pid, { sec: 7, clockIds: ['CLOCK_MONOTONIC'] });
    const before = monotonicNs();
    const r = await victim.now();
    const after = monotonicNs();
    expectWithin(r.hrtime - 7n * SECOND, before, after, DEFAULT_SLACK_NS, 'hrtime');
    await handle.update({ clockIds: ['CLOCK_REALTIME'] });
    const r2 = await victim.now();
    expectWithin(r2.hrtime, before, monotonicNs(), DEFAULT_SLACK_NS, 'hrtime after update');
    await handle.restore();
  });

  it('normalises tv_nsec when the offset carries across a second', async () => {
    const victim = await spawnVictim('c');
    // 999999999 ns pushes almost every reading across a second boundary.
    const handle = await skewClock(victim.pid, { sec: -1, nsec: 1_999_999_999 });
    for (let i = 0; i < 20; i++) {
      await expectOffset(victim, SECOND - 1n);
    }
    await handle.restore();
  });

  it('skews every selected clock id by the same offset', async () => {
    const victim = await spawnVictim('c');
    const handle = await skewClock(victim.pid, {
      offset: '1h',
      clockIds: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC', 'CLOCK_BOOTTIME', 'CLOCK_TAI', 'CLOCK_MONOTONIC_RAW', 'CLOCK_REALTIME_COARSE'],
    });
    const hour = 3600n * SECOND;
    const a = await (await spawnVictim('c')).now();
    const b = await victim.now();
    const c = await (await spawnVictim('c')).now();
    for (const key of ['realtime', 'monotonic', 'boottime', 'tai', 'monotonic_raw', 'realtime_coarse']) {
      expectWithin(b[key] - hour, a[key], c[key], DEFAULT_SLACK_NS, key);
    }
    await handle.restore();
  });
});
