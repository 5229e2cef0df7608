// restoreClock from a separate process after the skewing process was SIGKILLed: the skew lives in the
// target, not in the process that installed it, so it survives the installer's death, can be read
// and removed by any other process, and the removal leaves the vDSO byte-identical to a fresh one.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inspectClock, restoreClock } from '../lib/index';
import { binding } from './support/binding';
import { readVdso } from './support/vdso';
import {
  DEFAULT_SLACK_NS,
  closeAllVictims,
  expectWithin,
  sampleClock,
  spawnVictim,
  type Victim,
} from './support/victim';

const SKEW_NS = -600_000_000_000n;
const SKEWER = path.join(__dirname, 'support', 'skewer.js');
const SKEWER_TIMEOUT_MS = 30_000;

interface Skewer {
  child: ChildProcess;
  pid: number;
  /** The `skewed` line's install report. */
  report: { modes: Record<string, string>; threads: number };
}

const skewers = new Set<ChildProcess>();
const targets = new Set<number>();

afterEach(async () => {
  for (const child of skewers) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  skewers.clear();
  // A failed assertion must not leave a skew behind in a victim that is about to be closed anyway,
  // nor a victim that would not answer `exit` because it is still traced.
  for (const pid of targets) await restoreClock(pid).catch(() => undefined);
  targets.clear();
  await closeAllVictims();
});

/** Starts test/support/skewer.js against `target` and resolves once it printed `skewed`. */
async function startSkewer(target: number): Promise<Skewer> {
  targets.add(target);
  const child = spawn(process.execPath, [SKEWER, String(target)], { stdio: ['pipe', 'pipe', 'pipe'] });
  skewers.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const line = await new Promise<string>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`skewer (pid ${child.pid}) ${why}; stdout: ${JSON.stringify(stdout)} stderr: ${stderr.trim()}`));
    };
    const timer = setTimeout(() => fail(`printed no line within ${SKEWER_TIMEOUT_MS} ms`), SKEWER_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      resolve(stdout.slice(0, nl));
    });
    child.once('exit', (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
    child.once('error', (err) => fail(err.message));
  });
  const m = /^skewed (\d+) (\{.*\})$/.exec(line);
  if (!m) throw new Error(`skewer failed: ${line}; stderr: ${stderr.trim()}`);
  expect(Number(m[1])).toBe(child.pid);
  return { child, pid: child.pid!, report: JSON.parse(m[2]) };
}

async function expectClock(v: Victim, offsetNs: bigint, label: string): Promise<void> {
  for (const key of ['realtime', 'gettimeofday']) {
    const { before, value, after } = await sampleClock(v, key);
    expectWithin(value, before + offsetNs, after + offsetNs, DEFAULT_SLACK_NS, `${label}: ${key}`);
  }
}

/** Byte equality of two vDSO images, saying where they differ when they do. */
function expectSameBytes(actual: Buffer, expected: Buffer, label: string): void {
  if (actual.equals(expected)) return;
  const differing: number[] = [];
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) if (actual[i] !== expected[i]) differing.push(i);
  throw new Error(
    `${label}: ${actual.length} vs ${expected.length} bytes, ${differing.length} differ, ` +
      `first at offset 0x${differing[0]!.toString(16)}, last at 0x${differing.at(-1)!.toString(16)}`,
  );
}

function expectAlive(v: Victim): void {
  expect(v.child.exitCode).toBeNull();
  expect(v.child.signalCode).toBeNull();
}

describe('a skew installed by another process', () => {
  it('survives the installer being SIGKILLed and is removed by restoreClock from the test process', { timeout: 60_000 }, async () => {
    const victim = await spawnVictim('c');
    const reference = await spawnVictim('c');
    // The comparison at the end means something only if the two start out identical, and if a
    // skew shows up in the bytes.
    const pristine = readVdso(reference.pid);
    expectSameBytes(readVdso(victim.pid), pristine, 'two fresh processes');

    const skewer = await startSkewer(victim.pid);
    await expectClock(victim, SKEW_NS, 'installed by the skewer');
    expect(readVdso(victim.pid).equals(pristine)).toBe(false);
    await expectClock(reference, 0n, 'reference, untouched');

    const exited = once(skewer.child, 'exit');
    skewer.child.kill('SIGKILL');
    expect(await exited).toEqual([null, 'SIGKILL']);

    expectAlive(victim);
    await expectClock(victim, SKEW_NS, 'after the skewer was SIGKILLed');
    expectAlive(victim);
    // The header still names the dead installer.
    const left = await inspectClock(victim.pid);
    expect(left).toMatchObject({ installerPid: skewer.pid, active: true });
    expect(left!.clocks).toEqual({ CLOCK_REALTIME: SKEW_NS });

    expect(await restoreClock(victim.pid)).toBe(true);
    await expectClock(victim, 0n, 'after restoreClock');
    expectAlive(victim);
    expectSameBytes(readVdso(victim.pid), readVdso(reference.pid), 'restored vs reference');
    expectSameBytes(readVdso(victim.pid), pristine, 'restored vs the reference before the test');
    expect(await inspectClock(victim.pid)).toBeNull();
    expect(await restoreClock(victim.pid)).toBe(false);

    // Still a healthy child: it exits when told to, with its own code.
    victim.child.stdin!.write('exit 5\n');
    expect(await victim.exitCode()).toBe(5);
  });

  it('can be inspected from a process other than the installer', { timeout: 60_000 }, async () => {
    const victim = await spawnVictim('c');
    const skewer = await startSkewer(victim.pid);
    expect(skewer.pid).not.toBe(process.pid);

    const status = await inspectClock(victim.pid);
    expect(status).toMatchObject({
      pid: victim.pid,
      version: binding.version,
      installerPid: skewer.pid,
      active: true,
    });
    // Exactly these, nothing more: one clock, three hooks.
    expect(status!.clocks).toEqual({ CLOCK_REALTIME: -600_000_000_000n });
    expect(status!.mode).toEqual({ clock_gettime: 'trampoline', gettimeofday: 'trampoline', time: 'trampoline' });
    // What the installer was told is what the target carries.
    expect(status!.mode).toEqual(skewer.report.modes);
    await expectClock(victim, SKEW_NS, 'while the skewer is alive');

    // Inspecting stops nothing and changes nothing: still skewed, still installed.
    expect(await inspectClock(victim.pid)).toEqual(status);
    expect(await restoreClock(victim.pid)).toBe(true);
    expect(await inspectClock(victim.pid)).toBeNull();
    await expectClock(victim, 0n, 'after restoreClock');
  });
});
