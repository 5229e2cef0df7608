// A skew lives in the process's own copy of the vDSO page: fork() copies it to the child, exec()
// maps a fresh vDSO and drops it.
import { afterEach, expect, it } from 'vitest';
import { skewClock } from '../lib/index';
import {
  DEFAULT_SLACK_NS,
  closeAllVictims,
  expectWithin,
  parseReadings,
  realNowNs,
  spawnVictim,
} from './support/victim';

afterEach(closeAllVictims);

const OFFSET = -600_000_000_000n;

it('a child forked after the skew is skewed; a program it execs is not', async () => {
  const victim = await spawnVictim('c');
  const handle = await skewClock(victim.pid, { offset: OFFSET });

  let before = realNowNs();
  const forkedChild = parseReadings(await victim.request('fork'));
  expect(await victim.nextLine()).toMatch(/^forked \d+$/);
  let after = realNowNs();
  expectWithin(forkedChild.realtime - OFFSET, before, after, DEFAULT_SLACK_NS, 'forked child realtime');
  expectWithin(forkedChild.gettimeofday - OFFSET, before, after, DEFAULT_SLACK_NS, 'forked child gettimeofday');

  before = realNowNs();
  const execed = parseReadings(await victim.request('exec'));
  expect(await victim.nextLine()).toMatch(/^execed \d+$/);
  after = realNowNs();
  expectWithin(execed.realtime, before, after, DEFAULT_SLACK_NS, 'exec-ed program realtime');

  // The parent itself is still skewed, and restore does not depend on the children.
  before = realNowNs();
  const parent = await victim.now();
  after = realNowNs();
  expectWithin(parent.realtime - OFFSET, before, after, DEFAULT_SLACK_NS, 'parent realtime');
  await handle.restore();
  before = realNowNs();
  const restored = await victim.now();
  expectWithin(restored.realtime, before, realNowNs(), DEFAULT_SLACK_NS, 'restored parent realtime');
});
