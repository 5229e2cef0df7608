// Proves the victim harness itself, with no skew installed: every victim must
// agree with the test's own clock, or later skew tests would measure noise.
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_SLACK_NS,
  closeAllVictims,
  expectWithin,
  parseReadings,
  realNowNs,
  spawnVictim,
  type VictimKind,
} from './support/victim';

afterEach(closeAllVictims);

const realtimeKeys: Record<VictimKind, string[]> = {
  c: ['realtime', 'gettimeofday', 'tai', 'realtime_coarse'],
  go: ['realtime'],
  python: ['realtime'],
  node: ['realtime', 'datenow'],
};

describe.each(['c', 'go', 'python', 'node'] as const)('%s victim', (kind) => {
  it('reads the real time', async () => {
    const v = await spawnVictim(kind);
    expect(v.pid).toBe(v.child.pid);
    const before = realNowNs();
    const r = await v.now();
    const after = realNowNs();
    for (const key of realtimeKeys[kind]) expectWithin(r[key], before, after, DEFAULT_SLACK_NS, key);
    // time() is whole seconds, read from the coarse clock: up to a second behind.
    if (r.time !== undefined) expectWithin(r.time, before - 1_000_000_000n, after, DEFAULT_SLACK_NS, 'time');
    await v.close();
    expect(await v.exitCode()).toBe(0);
  });

  it('exits with the requested code', async () => {
    const v = await spawnVictim(kind);
    v.child.stdin!.write('exit 3\n');
    expect(await v.exitCode()).toBe(3);
    await expect(v.nextLine()).rejects.toThrow(/exited \(code 3/);
  });
});

describe('c victim', () => {
  it('reads every clock it reports, and monotonic clocks advance', async () => {
    const v = await spawnVictim('c');
    const a = await v.now();
    const b = await v.now();
    expect(Object.keys(a).sort()).toEqual(
      ['boottime', 'gettimeofday', 'monotonic', 'monotonic_raw', 'realtime', 'realtime_coarse', 'tai', 'time'].sort(),
    );
    for (const key of ['monotonic', 'boottime', 'monotonic_raw']) expect(b[key]).toBeGreaterThanOrEqual(a[key]);
    // Our hrtime is CLOCK_MONOTONIC too, so the victim's reading falls between ours.
    const before = process.hrtime.bigint();
    const c = await v.now();
    const after = process.hrtime.bigint();
    expectWithin(c.monotonic, before, after, DEFAULT_SLACK_NS, 'monotonic');
  });

  it('fork: the child reads the clock and the parent reports its pid', async () => {
    const v = await spawnVictim('c');
    const before = realNowNs();
    const childLine = await v.request('fork');
    const forked = await v.nextLine();
    const after = realNowNs();
    expect(childLine).toMatch(/^child realtime=/);
    expectWithin(parseReadings(childLine).realtime, before, after, DEFAULT_SLACK_NS, 'child realtime');
    const m = /^forked (\d+)$/.exec(forked);
    expect(m).not.toBeNull();
    expect(Number(m![1])).not.toBe(v.pid);
  });

  it('exec: a fresh image reads the clock', async () => {
    const v = await spawnVictim('c');
    const before = realNowNs();
    const execLine = await v.request('exec');
    const execed = await v.nextLine();
    const after = realNowNs();
    expect(execLine).toMatch(/^realtime=/);
    expectWithin(parseReadings(execLine).realtime, before, after, DEFAULT_SLACK_NS, 'exec realtime');
    expect(execed).toMatch(/^execed \d+$/);
  });

  it('spin: checker threads find no bad reads on an unskewed clock', async () => {
    const v = await spawnVictim('c');
    expect(await v.request('spin 4 0')).toBe('spinning 4');
    // Poll rather than sleep: what matters is enough reads (and at least
    // 300 ms of them), however fast or loaded this machine is.
    const start = Date.now();
    let stats = parseStats(await v.request('stats'));
    while ((stats.reads < 100_000 || Date.now() - start < 300) && Date.now() - start < 30_000) {
      await new Promise((r) => setTimeout(r, 10));
      stats = parseStats(await v.request('stats'));
    }
    expect(stats.reads).toBeGreaterThanOrEqual(100_000);
    expect(stats.firstBad).toBe('none');
    expect(stats.bad).toBe(0);
    expect(await v.request('expect 1000000000')).toBe('ok');
    const stopped = /^stopped reads=(\d+) bad=(\d+)$/.exec(await v.request('stop'));
    expect(stopped).not.toBeNull();
    expect(Number(stopped![1])).toBeGreaterThanOrEqual(stats.reads);
    expect(Number(stopped![2])).toBe(0);
  });

  it('answers unknown commands with an error line', async () => {
    const v = await spawnVictim('c');
    expect(await v.request('bogus')).toMatch(/^error /);
    expect(() => parseReadings('error unknown command: bogus')).toThrow(/not a clock readings line/);
  });
});

describe('harness helpers', () => {
  it('parseReadings handles the child prefix and negative values', () => {
    expect(parseReadings('child realtime=-5 monotonic=7')).toEqual({ realtime: -5n, monotonic: 7n });
  });

  it('expectWithin says how far outside the window a value is', () => {
    expect(() => expectWithin(100n, 0n, 10n, 0n, 'x')).toThrow(/x 100 is 0\.000 ms after/);
    expect(() => expectWithin(5n, 0n, 10n, 0n)).not.toThrow();
  });
});

function parseStats(line: string): { reads: number; bad: number; firstBad: string } {
  const m = /^reads=(\d+) bad=(\d+) first_bad=(\S+)$/.exec(line);
  if (!m) throw new Error(`bad stats line: ${JSON.stringify(line)}`);
  return { reads: Number(m[1]), bad: Number(m[2]), firstBad: m[3] };
}
