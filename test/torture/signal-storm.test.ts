// Issue 3, case 3: a signal storm during 1,000 skew/restore cycles, three ways.
//
// Another process (forked by the victim, sharing the handler counters with it through shared
// memory) sends signals to the victim while the test skews and restores it. Stopping threads with
// ptrace must never lose, duplicate or misdeliver a signal: a signal that arrives during the stop
// shows up as a signal-delivery-stop, and the engine must hand it back on release.
//
// How many were sent and delivered has to be counted carefully, because standard signals merge
// while one is pending (a second SIGUSR1 sent before the first is handled is simply dropped, by
// design, not by us). So the strongest true property differs per storm:
//  - ack (SIGUSR1): the sender sends one, waits until the handler has run, sends the next. Nothing
//    can merge, so handled == sent exactly, and a signal that vanishes stalls the sender (counted
//    as lost after 5 s). This is the exact check for SIGUSR1.
//  - rt (SIGRTMIN via sigqueue, as fast as the queue takes them): real-time signals queue and
//    never merge, so again handled == sent exactly, at full speed.
//  - flood (SIGUSR1 as fast as kill() goes): merging makes 1 <= handled <= sent the only exact
//    bound; on top, no SIGUSR1 may stay pending afterwards, and a following ack storm must
//    account for every signal (nothing is left stuck by the flood).
// In every storm the sender must reach thousands of signals per second, the victim must survive,
// and its spinning threads (which block these signals: only one thread takes them, see
// torture.c) must read only real or skewed values.
import { readFileSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { Budget, Problems, skewRestore } from './support/cycles';
import { closeAllDetached, parseSpinStats, report, spawnDetached, type Detached } from './support/detached';

afterAll(closeAllDetached);

const CYCLES = 1_000;
const MIN_RATE_PER_SECOND = 1_000;
const A = -600_000_000_000n;

interface StormResult {
  sent: number;
  handled: number;
  usr1: number;
  rt: number;
  lost: number;
  senderStatus: number;
  ratePerSecond: number;
}

const problems = new Problems();
const budget = new Budget(75); // all three storms; healthy, ~25 s

async function storm(victim: Detached, mode: 'ack' | 'rt' | 'flood', cycles: number): Promise<StormResult> {
  expect(await victim.request(`sigsend ${mode}`)).toMatch(/^sigsend \d+$/);
  const started = Date.now();
  if (cycles === 0) await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < cycles; i++) {
    if (budget.spent(problems, i, cycles, `cycles of the ${mode} storm`)) break;
    await skewRestore(victim.pid, { offset: A }, problems, `${mode} storm, cycle ${i}`);
  }
  const seconds = (Date.now() - started) / 1000;
  const line = await victim.request('sigstop', 15_000);
  const m = /^sigstopped sent=(\d+) handled=(\d+) usr1=(\d+) rt=(\d+) lost=(\d+) sender_status=(\d+)/.exec(line);
  if (!m) throw new Error(`unexpected reply ${JSON.stringify(line)}`);
  const [sent, handled, usr1, rt, lost, senderStatus] = m.slice(1).map(Number);
  return { sent, handled, usr1, rt, lost, senderStatus, ratePerSecond: Math.round(sent / seconds) };
}

function pendingSignals(pid: number): bigint {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const shared = /^ShdPnd:\s+([0-9a-f]+)$/m.exec(status)!;
  return BigInt(`0x${shared[1]}`);
}

it(`signal storms during ${CYCLES} skew/restore cycles each: every signal accounted for`, { timeout: 300_000 }, async () => {
  const started = Date.now();
  const victim = await spawnDetached(tortureVictimPaths.torture);
  expect(await victim.request('sigrecv')).toBe('sigrecv ok');
  expect(await victim.request(`spin 4 ${A} 8`)).toBe('spinning 4');

  const ack = await storm(victim, 'ack', CYCLES);
  report('signal-storm-ack', JSON.stringify(ack));
  expect(ack.lost).toBe(0);
  expect(ack.senderStatus).toBe(0);
  expect(ack.usr1).toBe(ack.sent);
  expect(ack.ratePerSecond).toBeGreaterThan(MIN_RATE_PER_SECOND);

  const rt = await storm(victim, 'rt', CYCLES);
  report('signal-storm-rt', JSON.stringify(rt));
  expect(rt.senderStatus).toBe(0);
  expect(rt.rt).toBe(rt.sent);
  expect(rt.ratePerSecond).toBeGreaterThan(MIN_RATE_PER_SECOND);

  const flood = await storm(victim, 'flood', CYCLES);
  report('signal-storm-flood', JSON.stringify(flood));
  expect(flood.senderStatus).toBe(0);
  expect(flood.usr1).toBeGreaterThanOrEqual(1);
  expect(flood.usr1).toBeLessThanOrEqual(flood.sent);
  expect(flood.ratePerSecond).toBeGreaterThan(MIN_RATE_PER_SECOND);
  const SIGUSR1_BIT = 1n << 9n; // bit (signo - 1)
  expect(pendingSignals(victim.pid) & SIGUSR1_BIT).toBe(0n);
  // Nothing stuck after the flood: a short acknowledged storm (no cycles) accounts for every one.
  const after = await storm(victim, 'ack', 0);
  expect(after.lost).toBe(0);
  expect(after.sent).toBeGreaterThan(0);
  expect(after.usr1).toBe(after.sent);

  const stats = parseSpinStats(await victim.request('stop'));
  expect(stats.bad, stats.firstBad).toBe(0n);
  expect(victim.exitStatus).toBeUndefined();
  report('signal-storm-spinner-reads', stats.reads);
  report('signal-storm-problems', problems.list.length);
  problems.print('signal-storm');
  report('signal-storm-seconds', ((Date.now() - started) / 1000).toFixed(1));
  expect(problems.list).toEqual([]);
});
