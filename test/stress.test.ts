// Eight threads read the clock in a tight loop while the skew is installed and removed 300 times.
// Each thread checks every value against raw syscalls taken just before and after it: a value is
// good only if it is the real time or the real time plus the offset. A thread caught inside the
// bytes being rewritten, or a torn offset, shows up as a bad value or a crash. Every restore must
// also take everything away at once: the threads are nearly always inside a clock call, and a
// restore that left its code behind would show as a vDSO different from a fresh process's.
import { afterEach, expect, it } from 'vitest';
import { skewClock } from '../lib/index';
import { closeAllVictims, spawnVictim } from './support/victim';
import { readVdso } from './support/vdso';

afterEach(closeAllVictims);

const OFFSET_NS = -600_000_000_000n;
const CYCLES = 300;

function parseStats(line: string): { reads: bigint; bad: bigint; firstBad: string } {
  const m = /reads=(\d+) bad=(\d+)(?: first_bad=(\S+))?/.exec(line);
  if (!m) throw new Error(`unexpected stats line: ${line}`);
  return { reads: BigInt(m[1]), bad: BigInt(m[2]), firstBad: m[3] ?? 'none' };
}

it(`survives ${CYCLES} skew/restore cycles under 8 spinning threads with only real or real+offset values`, async () => {
  const victim = await spawnVictim('c');
  expect(await victim.request(`spin 8 ${OFFSET_NS}`)).toBe('spinning 8');
  const pristine = readVdso(victim.pid);
  let moved = 0;
  let previousReads = 0n;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const handle = await skewClock(victim.pid, { offset: OFFSET_NS });
    moved += handle.lastReport.movedThreads;
    await handle.restore();
    moved += handle.lastReport.movedThreads;
    expect(readVdso(victim.pid).equals(pristine), `cycle ${cycle}: the restore left code behind`).toBe(true);
    if (cycle % 50 === 49) {
      // The threads keep running between cycles: their read count must grow.
      const stats = parseStats(await victim.request('stats'));
      expect(stats.bad, stats.firstBad).toBe(0n);
      expect(stats.reads).toBeGreaterThan(previousReads);
      previousReads = stats.reads;
    }
  }
  const final = parseStats(await victim.request('stop'));
  expect(final.bad).toBe(0n);
  expect(final.reads).toBeGreaterThan(10_000n);
  console.log(`stress: ${final.reads} reads, 0 bad, ${moved} threads moved or stepped out of hook code`);
  // Alive and answering with the real time.
  const r = await victim.now();
  expect(r.realtime).toBeGreaterThan(0n);
}, 300_000);
