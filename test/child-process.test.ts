// The target is a child_process of this very Node process. That is the awkward case for a ptrace
// based engine: stops of a traced child can be reported to its parent, and libuv's SIGCHLD handler
// would take such a stop for the child's exit (a false 'exit' event, a lost real one, a hung
// waiter). Hundreds of skew/restore cycles must leave the ChildProcess object exactly as if nothing
// had touched the child: no 'exit' until it really exits, then exactly one, with its real code.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { setImmediate as nextTick } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { inspectClock, restoreClock, skewClock } from '../lib/index';
import {
  DEFAULT_SLACK_NS,
  closeAllVictims,
  expectWithin,
  sampleClock,
  spawnVictim,
  type Victim,
} from './support/victim';

const SKEW_SEC = -600;
const SKEW_NS = BigInt(SKEW_SEC) * 1_000_000_000n;
/** No single engine call takes anywhere near this; a hang fails the test here, saying where. */
const CALL_DEADLINE_MS = 15_000;

afterEach(async () => {
  await closeAllVictims();
});

interface ExitRecord {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Records every 'exit' event of the child, attached before anything else touches it. */
function watchExits(v: Victim): ExitRecord[] {
  const exits: ExitRecord[] = [];
  v.child.on('exit', (code, signal) => exits.push({ code, signal }));
  return exits;
}

/** Rejects if `promise` has not settled after CALL_DEADLINE_MS, naming the call and the exits seen. */
async function settles<T>(promise: Promise<T>, what: string, exits: ExitRecord[]): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle within ${CALL_DEADLINE_MS} ms; 'exit' events: ${JSON.stringify(exits)}`)),
      CALL_DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectReal(v: Victim, key: string, label: string): Promise<void> {
  const { before, value, after } = await sampleClock(v, key);
  expectWithin(value, before, after, DEFAULT_SLACK_NS, label);
}

async function expectSkewed(v: Victim, key: string, label: string): Promise<void> {
  const { before, value, after } = await sampleClock(v, key);
  expectWithin(value, before + SKEW_NS, after + SKEW_NS, DEFAULT_SLACK_NS, label);
}

/**
 * skewClock -> the victim reads ~600 s behind -> restore -> the victim reads the real time, `cycles`
 * times. Every cycle also checks that the child is still alive as far as Node knows.
 */
async function skewRestoreCycles(v: Victim, key: string, cycles: number, exits: ExitRecord[]): Promise<void> {
  for (let i = 0; i < cycles; i++) {
    const handle = await settles(skewClock(v.pid, { sec: SKEW_SEC }), `cycle ${i}: skewClock(${v.pid})`, exits);
    expect(handle.pid).toBe(v.pid);
    await expectSkewed(v, key, `cycle ${i}: skewed ${key}`);
    await settles(handle.restore(), `cycle ${i}: handle.restore()`, exits);
    expect(handle.restored).toBe(true);
    await expectReal(v, key, `cycle ${i}: restored ${key}`);
    // Fail at the first cycle that produced a false exit, not only at the end.
    if (exits.length !== 0) {
      throw new Error(`cycle ${i}: child ${v.pid} emitted 'exit' ${JSON.stringify(exits)} while still running`);
    }
  }
}

/** Sends `exit <code>` and checks that exactly one 'exit' event, with that code, follows. */
async function expectSingleExit(v: Victim, code: number, exits: ExitRecord[]): Promise<void> {
  const exited = once(v.child, 'exit');
  const closed = once(v.child, 'close');
  v.child.stdin!.write(`exit ${code}\n`);
  const [exitCode, signal] = (await settles(exited, `'exit' after "exit ${code}"`, exits)) as [
    number | null,
    NodeJS.Signals | null,
  ];
  expect({ code: exitCode, signal }).toEqual({ code, signal: null });
  // 'close' (all stdio closed) comes after 'exit'; a few more turns of the loop after it give any
  // second SIGCHLD processing the chance to emit a duplicate.
  await settles(closed, `'close' after "exit ${code}"`, exits);
  for (let i = 0; i < 5; i++) await nextTick();
  expect(exits).toEqual([{ code, signal: null }]);
  expect(v.child.exitCode).toBe(code);
  expect(v.child.signalCode).toBeNull();
  expect(await v.exitCode()).toBe(code);
}

describe('skewing a child_process of the test process', () => {
  it('300 skew/restore cycles on a C child: no false exit, then exactly one real exit (code 7)', { timeout: 90_000 }, async () => {
    const v = await spawnVictim('c');
    const exits = watchExits(v);
    expect(v.child.pid).toBe(v.pid);

    await skewRestoreCycles(v, 'realtime', 300, exits);

    expect(exits).toEqual([]);
    expect(v.child.exitCode).toBeNull();
    expect(v.child.signalCode).toBeNull();
    await expectReal(v, 'realtime', 'after the cycles: realtime');
    await expectReal(v, 'gettimeofday', 'after the cycles: gettimeofday');
    expect(await settles(inspectClock(v.pid), 'inspectClock', exits)).toBeNull();
    expect(await settles(restoreClock(v.pid), 'restoreClock', exits)).toBe(false);

    await expectSingleExit(v, 7, exits);
  });

  it('50 skew/restore cycles on a Node child (Date.now): no false exit, then exactly one real exit (code 7)', { timeout: 90_000 }, async () => {
    const v = await spawnVictim('node');
    const exits = watchExits(v);

    await skewRestoreCycles(v, 'datenow', 50, exits);

    expect(exits).toEqual([]);
    expect(v.child.exitCode).toBeNull();
    expect(v.child.signalCode).toBeNull();
    await expectReal(v, 'datenow', 'after the cycles: datenow');
    expect(await settles(inspectClock(v.pid), 'inspectClock', exits)).toBeNull();
    expect(await settles(restoreClock(v.pid), 'restoreClock', exits)).toBe(false);

    await expectSingleExit(v, 7, exits);
  });
});

/** Our children named timeskew-helper (the engine's helper process). */
function helperPids(): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && stat.includes('(timeskew-helper)')) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function processState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.charAt(stat.lastIndexOf(')') + 2);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!condition()) throw new Error(`timed out waiting until ${what}`);
}

describe('the helper process', () => {
  it('one serves every operation, holds nothing of ours but its socket, and is replaced once killed', { timeout: 30_000 }, async () => {
    const children = [spawn('sleep', ['30'], { stdio: 'ignore' }), spawn('sleep', ['30'], { stdio: 'ignore' })];
    try {
      const pids = children.map((c) => c.pid!);
      await until(() => pids.every((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n'), 'the children run sleep');
      const handles = await Promise.all(pids.map((pid) => skewClock(pid, { offset: '-10m' })));
      const [helper, ...more] = helperPids();
      expect(helper).toBeDefined();
      expect(more).toEqual([]);
      expect(readdirSync(`/proc/${helper}/fd`).sort()).toEqual(['0', '1', '2', '3']);
      expect(readlinkSync(`/proc/${helper}/fd/0`)).toBe('/dev/null');

      // Children started now do not inherit our end of its socket (nor anything else of ours).
      const late = spawn('sleep', ['30'], { stdio: 'ignore' });
      children.push(late);
      await until(() => readFileSync(`/proc/${late.pid}/comm`, 'utf8') === 'sleep\n', 'the late child runs sleep');
      expect(readdirSync(`/proc/${late.pid}/fd`).map((fd) => readlinkSync(`/proc/${late.pid}/fd/${fd}`))).not.toContainEqual(
        expect.stringMatching(/^socket:/),
      );

      process.kill(helper!, 'SIGKILL');
      await until(() => processState(helper!) === 'Z', 'the helper died');
      await Promise.all(handles.map((h) => h.restore()));
      expect(handles.every((h) => h.lastReport.threads >= 1)).toBe(true);
      expect(helperPids()).toHaveLength(1);
      expect(helperPids()).not.toContain(helper);
      for (const pid of pids) expect(await inspectClock(pid)).toBeNull();
    } finally {
      for (const child of children) child.kill('SIGKILL');
    }
  });
});
