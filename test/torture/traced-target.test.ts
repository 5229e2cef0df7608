// Issue 3, case 3: a target already traced by strace or gdb.
//
// A thread can have one tracer. While strace (`-p`: the main thread only; `-f -p`: every thread)
// or gdb (`-p`: every thread, all stopped) holds the target, skewClock must fail with EBUSY and a
// hint naming the tracer, and leave the target untouched: its vDSO byte-identical, none of its
// threads traced or stopped by us, and it carries on as if nothing happened once the debugger
// detaches (then a skew works normally).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, afterEach, expect, it } from 'vitest';
import { TimeSkewError, inspectClock, skewClock } from '../../lib/index';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import {
  closeAllDetached,
  parseSpinStats,
  report,
  spawnDetached,
  threadStates,
  tracers,
  waitFor,
  type Detached,
} from './support/detached';

const A = -600_000_000_000n;
const THREADS = 4;

const debuggers = new Set<ChildProcess>();
afterEach(async () => {
  for (const d of debuggers) {
    if (d.exitCode === null && d.signalCode === null) {
      const gone = once(d, 'exit');
      d.kill('SIGKILL');
      await gone;
    }
  }
  debuggers.clear();
});
afterAll(closeAllDetached);

async function startDebugger(cmd: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  child.stdin!.on('error', () => {});
  debuggers.add(child);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`${cmd} could not start (Debian packages: strace, gdb): ${err.message}`)));
  });
  return child;
}

async function victimWithThreads(): Promise<Detached> {
  const victim = await spawnDetached(tortureVictimPaths.torture);
  expect(await victim.request(`spin ${THREADS} ${A} 8`)).toBe(`spinning ${THREADS}`);
  return victim;
}

/** skewClock fails with EBUSY naming the tracer, and the target is exactly as before. */
async function expectRefusedUntouched(victim: Detached, tracer: number, label: string): Promise<string> {
  const before = readVdso(victim.pid);
  const tracersBefore = tracers(victim.pid);
  const err = await skewClock(victim.pid, { offset: A }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${label}: skewClock succeeded on a traced target`).toBeInstanceOf(TimeSkewError);
  const e = err as TimeSkewError;
  expect(e.code, `${label}: ${e.message}`).toBe('EBUSY');
  expect(e.hint ?? '', label).toMatch(new RegExp(`${tracer}`));
  expect(e.hint ?? '', label).toMatch(/debugger|strace|trac/i);
  expect(readVdso(victim.pid).equals(before), `${label}: vDSO changed`).toBe(true);
  expect(await inspectClock(victim.pid)).toBeNull();
  // Nobody else attached, nothing left stopped by us. (Thread states under strace come and go:
  // strace itself parks a thread in a syscall-stop, 't', at every system call. A group stop, 'T',
  // is what a leftover of ours would look like.)
  expect(tracers(victim.pid), label).toEqual(tracersBefore);
  await new Promise((r) => setTimeout(r, 20));
  expect([...threadStates(victim.pid).values()].filter((s) => s === 'T'), label).toEqual([]);
  return `${e.code}: ${e.message.split('\n')[0]} | hint: ${e.hint}`;
}

/** After the debugger is gone: running, untraced, never a bad value, and a skew now works. */
async function expectHealthyAfter(victim: Detached, label: string): Promise<void> {
  await waitFor(`${label}: untraced`, () => tracers(victim.pid).every((t) => t === 0), 10_000);
  await waitFor(`${label}: running`, () => [...threadStates(victim.pid).values()].every((s) => s !== 't' && s !== 'T'), 10_000);
  const handle = await skewClock(victim.pid, { offset: A });
  await handle.restore();
  const stats = parseSpinStats(await victim.request('stop'));
  expect(stats.bad, stats.firstBad).toBe(0n);
  expect(stats.reads).toBeGreaterThan(0n);
  expect(victim.exitStatus).toBeUndefined();
}

it('strace -p (main thread traced): EBUSY with a hint, target untouched', async () => {
  const victim = await victimWithThreads();
  const strace = await startDebugger('strace', ['-p', String(victim.pid), '-o', '/dev/null']);
  await waitFor('strace attached', () => tracers(victim.pid)[0] === strace.pid, 10_000);
  report('traced-strace-p', await expectRefusedUntouched(victim, strace.pid!, 'strace -p'));
  strace.kill('SIGTERM'); // strace detaches cleanly on SIGTERM
  await once(strace, 'exit');
  await expectHealthyAfter(victim, 'after strace -p');
});

it('strace -f -p (every thread traced): EBUSY with a hint, target untouched', async () => {
  const victim = await victimWithThreads();
  const strace = await startDebugger('strace', ['-f', '-p', String(victim.pid), '-o', '/dev/null']);
  await waitFor('strace attached to every thread', () => tracers(victim.pid).every((t) => t === strace.pid), 10_000);
  report('traced-strace-f-p', await expectRefusedUntouched(victim, strace.pid!, 'strace -f -p'));
  strace.kill('SIGTERM');
  await once(strace, 'exit');
  await expectHealthyAfter(victim, 'after strace -f -p');
});

it('gdb -p (every thread traced and stopped): EBUSY with a hint, target untouched', async () => {
  const victim = await victimWithThreads();
  const gdb = await startDebugger('gdb', ['-q', '-nx', '-p', String(victim.pid)]);
  await waitFor(
    'gdb attached to every thread',
    () => tracers(victim.pid).every((t) => t === gdb.pid) && [...threadStates(victim.pid).values()].every((s) => s === 't'),
    30_000,
  );
  report('traced-gdb-p', await expectRefusedUntouched(victim, gdb.pid!, 'gdb -p'));
  gdb.stdin!.write('detach\nquit\n');
  await once(gdb, 'exit');
  await expectHealthyAfter(victim, 'after gdb detached');
});
