// The `timeskew` command line, run as a real process (dist/cli.js) against real victims: the
// skew/status/restore round trip, JSON output, --duration and --every timing, signals, the
// watchmaker aliases, --tree and --cgroup, `run`, the exit status of every failure class, --help.
import { spawn, spawnSync } from 'node:child_process';
import { chmod, copyFile, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inspectClock, restoreClock } from '../lib/index';
import { EXIT, parseArgs, UsageError } from '../lib/cli';
import { victimPaths } from './support/build-victims';
import { REPO, ensureBuilt, runCli, startCli } from './support/cli';
import { DEFAULT_SLACK_NS, closeAllVictims, expectWithin, parseReadings, realNowNs, sampleClock, spawnVictim, type Victim } from './support/victim';

const MINUTE_NS = 60_000_000_000n;
const HOUR_NS = 60n * MINUTE_NS;
const SLACK = DEFAULT_SLACK_NS;
const isRoot = process.getuid?.() === 0;

beforeAll(() => ensureBuilt());
afterEach(closeAllVictims);

/** Checks the victim's reading of `key` against our own clock of the same kind (we are never skewed). */
async function expectOffset(victim: Victim, offsetNs: bigint, key: 'realtime' | 'monotonic' = 'realtime'): Promise<void> {
  if (key === 'realtime') {
    const { before, value, after } = await sampleClock(victim, key);
    expectWithin(value, before + offsetNs, after + offsetNs, SLACK, `${key} of pid ${victim.pid}`);
    return;
  }
  const before = process.hrtime.bigint(); // CLOCK_MONOTONIC
  const value = (await victim.now()).monotonic;
  const after = process.hrtime.bigint();
  expectWithin(value, before + offsetNs, after + offsetNs, SLACK, `${key} of pid ${victim.pid}`);
}

function unusedPid(): number {
  for (let pid = 4_000_000; pid > 1000; pid -= 7919) if (!existsSync(`/proc/${pid}`)) return pid;
  throw new Error('no unused pid found');
}

describe('command line parsing', () => {
  it('takes the word after a value option as its value, even when it starts with "-"', () => {
    const p = parseArgs(['skew', '12', '--offset', '-10m', '-c', 'realtime,monotonic', '--clock=CLOCK_TAI', '34']);
    expect(p.pids).toEqual([12, 34]);
    expect(p.offset).toBe('-10m');
    expect(p.clocks).toEqual(['realtime', 'monotonic', 'CLOCK_TAI']);
  });

  it('maps the watchmaker flags, with one dash or two, and needs no command word', () => {
    const p = parseArgs(['-pid', '12', '--sec_delta', '-600', '-nsec_delta=5', '-clk_ids', 'CLOCK_REALTIME,CLOCK_MONOTONIC']);
    expect(p).toMatchObject({ command: 'skew', pids: [12], sec: '-600', nsec: '5', clocks: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC'] });
  });

  it('run takes everything from the first word that is not an option (or after --) as the command', () => {
    expect(parseArgs(['run', '-o', '1h', 'date', '+%s', '--utc']).argv).toEqual(['date', '+%s', '--utc']);
    expect(parseArgs(['run', '-o', '1h', '--', '-weird', '--offset']).argv).toEqual(['-weird', '--offset']);
  });

  it.each([
    [['frobnicate', '1']],
    [['skew', '1', '--bogus']],
    [['skew', 'abc', '--offset', '1s']],
    [['skew', '1', '--offset']],
    [['skew', '1', '--offset', '1s', '--offset', '2s']],
    [['restore', '1', '--offset', '1s']],
    [['status', '1', '--', 'x']],
    [['skew', '1', '--tree=yes']],
  ])('%j is a usage error', (args) => {
    expect(() => parseArgs(args)).toThrow(UsageError);
  });
});

describe('--help', () => {
  it.each(['skew', 'restore', 'status', 'run'])('`%s --help`, `help` and `-h` print that command’s usage', async (command) => {
    for (const args of [[command, '--help'], ['help', command], [command, '-h']]) {
      const r = await runCli(args);
      expect(r.code, r.stderr).toBe(EXIT.OK);
      expect(r.stdout).toContain(`Usage: timeskew ${command}`);
      expect(r.stdout).toContain('Exit status');
    }
  });

  it('`--help` lists every command; no arguments prints it on stderr with the usage status', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(EXIT.OK);
    for (const command of ['skew', 'restore', 'status', 'run']) expect(help.stdout).toContain(`timeskew ${command}`);
    const none = await runCli([]);
    expect(none.code).toBe(EXIT.USAGE);
    expect(none.stderr).toContain('Usage:');
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')).version);
  });
});

describe.runIf(isRoot)('skew, status, restore', () => {
  it('round trip: the victim lives 10 minutes in the past until restored; status shows it', async () => {
    const victim = await spawnVictim('c');
    const skew = await runCli(['skew', String(victim.pid), '--offset', '-10m']);
    expect(skew.code, skew.stderr).toBe(EXIT.OK);
    expect(skew.stdout).toContain(`skewed pid ${victim.pid} by -10m0s on CLOCK_REALTIME`);
    expect(skew.stdout).toContain(`timeskew restore ${victim.pid}`);
    await expectOffset(victim, -10n * MINUTE_NS);
    await expectOffset(victim, 0n, 'monotonic');

    const status = await runCli(['status', String(victim.pid)]);
    expect(status.code, status.stderr).toBe(EXIT.OK);
    const [header, row] = status.stdout.trim().split('\n');
    expect(header.split(/\s+/)).toEqual(['PID', 'STATE', 'OFFSET', 'CLOCKS', 'MODE', 'INSTALLER', 'VERSION']);
    expect(row.split(/\s+/).slice(0, 4)).toEqual([String(victim.pid), 'skewed', '-10m0s', 'CLOCK_REALTIME']);

    const restore = await runCli(['restore', String(victim.pid)]);
    expect(restore.code, restore.stderr).toBe(EXIT.OK);
    expect(restore.stdout).toContain(`restored pid ${victim.pid}`);
    await expectOffset(victim, 0n);
    expect(await inspectClock(victim.pid)).toBeNull();

    const again = await runCli(['restore', String(victim.pid)]);
    expect(again.code).toBe(EXIT.OK);
    expect(again.stdout).toContain('no skew installed');
    const none = await runCli(['status', String(victim.pid)]);
    expect(none.stdout.trim().split('\n')[1].split(/\s+/).slice(0, 2)).toEqual([String(victim.pid), 'none']);
  });

  it('--json prints one event per line, offsets as strings of nanoseconds', async () => {
    const [a, b] = await Promise.all([spawnVictim('c'), spawnVictim('go')]);
    const skew = await runCli(['skew', String(a.pid), String(b.pid), '--offset', '72h', '--clock', 'realtime,monotonic', '--json']);
    expect(skew.code, skew.stderr).toBe(EXIT.OK);
    expect(skew.events).toHaveLength(2);
    for (const [event, victim] of [[skew.events[0], a], [skew.events[1], b]] as const) {
      expect(event).toMatchObject({
        event: 'skewed', pid: victim.pid, offsetNs: String(72n * HOUR_NS), offset: '72h0m0s',
        clocks: ['CLOCK_REALTIME', 'CLOCK_MONOTONIC'],
      });
      expect(event.threads).toBeGreaterThan(0);
      expect(Object.keys(event.mode as object).sort()).toEqual(['clock_gettime', 'gettimeofday', 'time']);
    }
    await expectOffset(b, 72n * HOUR_NS);

    const status = await runCli(['status', String(a.pid), String(b.pid), '--json']);
    expect(status.events.map((e) => [e.pid, e.skewed])).toEqual([[a.pid, true], [b.pid, true]]);
    expect(status.events[0].clocks).toEqual({
      CLOCK_REALTIME: { offsetNs: String(72n * HOUR_NS), offset: '72h0m0s' },
      CLOCK_MONOTONIC: { offsetNs: String(72n * HOUR_NS), offset: '72h0m0s' },
    });
    expect(status.events[0].installerPid).toEqual(expect.any(Number));

    const restore = await runCli(['restore', String(a.pid), String(b.pid), '--json']);
    expect(restore.events).toEqual([
      { event: 'restored', pid: a.pid, restored: true },
      { event: 'restored', pid: b.pid, restored: true },
    ]);
    await expectOffset(b, 0n);
  });

  it('--replace changes an existing skew; without it the status is EBUSY (5)', async () => {
    const victim = await spawnVictim('c');
    expect((await runCli(['skew', String(victim.pid), '-o', '-1h'])).code).toBe(EXIT.OK);
    const busy = await runCli(['skew', String(victim.pid), '-o', '1h']);
    expect(busy.code).toBe(EXIT.EBUSY);
    expect(busy.stderr).toMatch(/EBUSY: .*already skewed/);
    expect(busy.stderr).toContain('--replace');
    await expectOffset(victim, -HOUR_NS);
    expect((await runCli(['skew', String(victim.pid), '-o', '1h', '--replace'])).code).toBe(EXIT.OK);
    await expectOffset(victim, HOUR_NS);
    await restoreClock(victim.pid);
  });

  it('all or nothing: when one pid fails, those already skewed are restored', async () => {
    const victim = await spawnVictim('c');
    const missing = unusedPid();
    const r = await runCli(['skew', String(victim.pid), String(missing), '-o', '1h']);
    expect(r.code).toBe(EXIT.ESRCH);
    expect(r.stdout).toContain(`restored pid ${victim.pid} (rolled back`);
    expect(await inspectClock(victim.pid)).toBeNull();
  });

  it('--sec/--nsec and the watchmaker flags give the same skew', async () => {
    const victim = await spawnVictim('c');
    const wm = await runCli(['-pid', String(victim.pid), '-sec_delta', '-600', '-nsec_delta', '500', '-clk_ids', 'CLOCK_REALTIME,CLOCK_MONOTONIC']);
    expect(wm.code, wm.stderr).toBe(EXIT.OK);
    expect((await inspectClock(victim.pid))?.clocks).toEqual({
      CLOCK_REALTIME: -599_999_999_500n,
      CLOCK_MONOTONIC: -599_999_999_500n,
    });
    await expectOffset(victim, -599_999_999_500n);
    await expectOffset(victim, -599_999_999_500n, 'monotonic');
    const native = await runCli(['skew', String(victim.pid), '--sec', '-600', '--nsec', '500', '--clock', 'CLOCK_REALTIME', '--replace']);
    expect(native.code, native.stderr).toBe(EXIT.OK);
    expect((await inspectClock(victim.pid))?.clocks).toEqual({ CLOCK_REALTIME: -599_999_999_500n });
    await restoreClock(victim.pid);
  });
});

describe.runIf(isRoot)('timed skews and signals', () => {
  it('--duration restores by itself', async () => {
    const victim = await spawnVictim('c');
    const started = performance.now();
    const cli = startCli(['skew', String(victim.pid), '--offset', '-10m', '--duration', '1500ms', '--json']);
    await cli.waitFor(/"event":"skewed"/);
    await expectOffset(victim, -10n * MINUTE_NS);
    const result = await cli.done;
    const elapsed = performance.now() - started;
    expect(result.code, result.stderr).toBe(EXIT.OK);
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(result.events.map((e) => e.event)).toEqual(['skewed', 'restored']);
    expect(result.events[1]).toMatchObject({ pid: victim.pid, reason: 'duration elapsed' });
    await expectOffset(victim, 0n);
    expect(await inspectClock(victim.pid)).toBeNull();
  });

  it('--every repeats the skew for --duration at the start of every period', async () => {
    const victim = await spawnVictim('c');
    const started = performance.now();
    const cli = startCli(['skew', String(victim.pid), '--offset', '-600s', '--duration', '600ms', '--every', '1500ms', '--count', '3', '--json']);
    // Inside the second period's skew, the clock is behind; between periods it is exact.
    await cli.waitFor(/"event":"skewed".*"cycle":2/);
    await expectOffset(victim, -10n * MINUTE_NS);
    const result = await cli.done;
    const elapsed = performance.now() - started;
    expect(result.code, result.stderr).toBe(EXIT.OK);
    expect(result.events.map((e) => `${e.event}${e.cycle ?? ''}`)).toEqual([
      'skewed1', 'restored', 'skewed2', 'restored', 'skewed3', 'restored',
    ]);
    // Two full periods, then the third skew's duration.
    expect(elapsed).toBeGreaterThanOrEqual(2 * 1500 + 600);
    expect(await inspectClock(victim.pid)).toBeNull();
    await expectOffset(victim, 0n);
  });

  it.each([
    ['SIGTERM', 143, ['--hold']],
    ['SIGINT', 130, ['--duration', '1h']],
    ['SIGHUP', 129, ['--duration', '30s', '--every', '1h']],
  ] as const)('%s restores before exiting (status %d)', async (signal, status, extra) => {
    const victim = await spawnVictim('c');
    const cli = startCli(['skew', String(victim.pid), '--offset', '1h', '--json', ...extra]);
    await cli.waitFor(/"event":"skewed"/);
    await expectOffset(victim, HOUR_NS);
    cli.child.kill(signal);
    const result = await cli.done;
    expect(result.code, result.stderr).toBe(status);
    expect(result.events.at(-1)).toMatchObject({ event: 'restored', pid: victim.pid, reason: `signal ${signal}` });
    expect(await inspectClock(victim.pid)).toBeNull();
    await expectOffset(victim, 0n);
  });

  it('a victim that exits while held is reported, not an error', async () => {
    const victim = await spawnVictim('c');
    const cli = startCli(['skew', String(victim.pid), '--offset', '1h', '--duration', '1s']);
    await cli.waitFor(/skewed pid/);
    await victim.close();
    const result = await cli.done;
    expect(result.code, result.stderr).toBe(EXIT.OK);
    expect(result.stdout).toContain(`pid ${victim.pid} exited`);
  });
});

describe.runIf(isRoot)('--tree and --cgroup', () => {
  it('--tree skews, shows and restores a process and all its descendants', async () => {
    // A shell with two children, one of them with a child of its own.
    const shell = spawn('sh', ['-c', 'sleep 60 & sh -c "sleep 60 & wait" & wait'], { stdio: 'ignore' });
    try {
      let tree: number[] = [];
      const deadline = Date.now() + 10_000;
      const { expandTree } = await import('../lib/targets');
      while (tree.length < 4 && Date.now() < deadline) {
        tree = await expandTree(shell.pid!);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(tree).toHaveLength(4);
      const skew = await runCli(['skew', String(shell.pid), '--tree', '-o', '1h', '--json']);
      expect(skew.code, skew.stderr).toBe(EXIT.OK);
      expect(skew.events.map((e) => e.pid).sort()).toEqual([...tree].sort());
      for (const pid of tree) expect((await inspectClock(pid))?.clocks).toEqual({ CLOCK_REALTIME: HOUR_NS });

      const status = await runCli(['status', String(shell.pid), '--tree', '--json']);
      expect(status.events.filter((e) => e.skewed === true)).toHaveLength(4);

      const restore = await runCli(['restore', String(shell.pid), '--tree']);
      expect(restore.code, restore.stderr).toBe(EXIT.OK);
      for (const pid of tree) expect(await inspectClock(pid)).toBeNull();
    } finally {
      spawnSync('pkill', ['-KILL', '-P', String(shell.pid)]);
      shell.kill('SIGKILL');
    }
  });

  const cgroupRoot = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup', '/sys/fs/cgroup/pids'].find((dir) => {
    try {
      const probe = path.join(dir, `timeskew-probe-${process.pid}`);
      mkdirSync(probe);
      rmdirSync(probe);
      return existsSync(path.join(dir, 'cgroup.procs'));
    } catch {
      return false;
    }
  });

  it.runIf(cgroupRoot !== undefined)('--cgroup skews every process of a cgroup and its sub-cgroups', async () => {
    const group = path.join(cgroupRoot!, `timeskew-test-${process.pid}`);
    const sub = path.join(group, 'inner');
    mkdirSync(sub, { recursive: true });
    const victims = await Promise.all([spawnVictim('c'), spawnVictim('go')]);
    try {
      writeFileSync(path.join(group, 'cgroup.procs'), String(victims[0].pid));
      writeFileSync(path.join(sub, 'cgroup.procs'), String(victims[1].pid));
      const skew = await runCli(['skew', '--cgroup', group, '-o', '-10m', '--json']);
      expect(skew.code, skew.stderr).toBe(EXIT.OK);
      expect(skew.events.map((e) => e.pid).sort()).toEqual(victims.map((v) => v.pid).sort());
      for (const v of victims) await expectOffset(v, -10n * MINUTE_NS);

      const status = await runCli(['status', '--cgroup', path.join(group, 'cgroup.procs'), '--json']);
      expect(status.events.map((e) => e.skewed)).toEqual([true, true]);
      const restore = await runCli(['restore', '--cgroup', group]);
      expect(restore.code, restore.stderr).toBe(EXIT.OK);
      for (const v of victims) await expectOffset(v, 0n);

      // A cgroup with nobody in it: nothing to skew is ESRCH; no such cgroup is a usage error.
      const empty = path.join(group, 'empty');
      mkdirSync(empty);
      expect((await runCli(['skew', '--cgroup', empty, '-o', '1s'])).code).toBe(EXIT.ESRCH);
      expect((await runCli(['skew', '--cgroup', path.join(group, 'nope'), '-o', '1s'])).code).toBe(EXIT.USAGE);
      rmdirSync(empty);
    } finally {
      const parentProcs = path.join(cgroupRoot!, 'cgroup.procs');
      for (const v of victims) {
        try {
          writeFileSync(parentProcs, String(v.pid));
        } catch {
          // exited
        }
      }
      await closeAllVictims();
      rmdirSync(sub);
      rmdirSync(group);
    }
  });
});

describe.runIf(isRoot)('run', () => {
  it('starts a C program whose clock is already skewed at main()', async () => {
    const before = realNowNs();
    const r = await runCli(['run', '--offset', '1h', '--', victimPaths.c, '--once']);
    const after = realNowNs();
    expect(r.code, r.stderr).toBe(0);
    const readings = parseReadings(r.stdout.trim());
    expectWithin(readings.realtime, before + HOUR_NS, after + HOUR_NS, SLACK, 'realtime at main');
    expectWithin(readings.gettimeofday, before + HOUR_NS, after + HOUR_NS, SLACK, 'gettimeofday at main');
    expect(readings.realtime - readings.tai).toBeGreaterThan(HOUR_NS - 60n * 1_000_000_000n); // TAI not selected
  });

  it('`date +%s` run with -1h prints a time one hour in the past', async () => {
    const r = await runCli(['run', '-o', '-1h', 'date', '+%s']);
    expect(r.code, r.stderr).toBe(0);
    const printed = Number(r.stdout.trim());
    const real = Date.now() / 1000;
    expect(Math.abs(printed - (real - 3600))).toBeLessThanOrEqual(2);
  });

  it('passes the environment and the exit status through', async () => {
    const r = await runCli(['run', '-o', '1m', '--', 'sh', '-c', 'echo "$TIMESKEW_TEST_VAR"; exit 7'], { TIMESKEW_TEST_VAR: 'hello' });
    expect(r.stdout.trim()).toBe('hello');
    expect(r.code).toBe(7);
    const killed = await runCli(['run', '-o', '1m', '--', 'sh', '-c', 'kill -9 $$']);
    expect(killed.code).toBe(128 + 9);
  });

  it('forwards SIGTERM to the program and exits with its status', async () => {
    const cli = startCli(['run', '-o', '1m', '--', 'sh', '-c', 'trap "echo got-term; exit 3" TERM; echo started; while :; do sleep 0.05; done']);
    await cli.waitFor(/started/);
    cli.child.kill('SIGTERM');
    const r = await cli.done;
    expect(r.stdout).toContain('got-term');
    expect(r.code).toBe(3);
  });

  it('no such program is 127, a program that cannot be executed is 126', async () => {
    const missing = await runCli(['run', '-o', '1h', '--', 'timeskew-no-such-program']);
    expect(missing.code).toBe(EXIT.NOT_FOUND);
    expect(missing.stderr).toContain('cannot run timeskew-no-such-program');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'timeskew-run-'));
    const plain = path.join(dir, 'not-executable');
    await writeFile(plain, 'just text\n', { mode: 0o644 });
    const notExecutable = await runCli(['run', '-o', '1h', '--', plain]);
    await rm(dir, { recursive: true, force: true });
    expect(notExecutable.code).toBe(EXIT.CANNOT_EXECUTE);
    expect(notExecutable.stderr).toMatch(/cannot run .*not-executable: Permission denied/);
    const noCommand = await runCli(['run', '-o', '1h']);
    expect(noCommand.code).toBe(EXIT.USAGE);
  });
});

describe('exit status of each failure class', () => {
  it.runIf(isRoot)('a pid that does not exist is ESRCH (3) for skew, status and restore', async () => {
    const pid = String(unusedPid());
    for (const args of [['skew', pid, '-o', '1s'], ['status', pid], ['restore', pid]]) {
      const r = await runCli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(EXIT.ESRCH);
      expect(r.stderr).toMatch(/ESRCH: .*\(pid \d+\)/);
    }
    const json = await runCli(['status', pid, '--json']);
    expect(json.events).toEqual([expect.objectContaining({ event: 'error', code: 'ESRCH', pid: Number(pid) })]);
  });

  it.each([
    [['skew', '1', '--offset', '10']],
    [['skew', '1', '--offset', '10 minutes']],
    [['skew', '1', '--offset', '1s', '--clock', 'CLOCK_WALL']],
    [['skew', '1', '--offset', '1s', '--every', '1m']],
    [['skew', '1', '--offset', '1s', '--duration', '1m', '--every', '30s']],
    [['skew', '1', '--offset', '1s', '--duration', '0s']],
    [['skew', '1']],
    [['skew', '--offset', '1s']],
    [['skew', '0', '--offset', '1s']],
    [['skew', '1', '--sec', 'abc']],
  ])('%j is a usage error (2) and touches nothing', async (args) => {
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(EXIT.USAGE);
    expect(r.stderr).toMatch(/^timeskew: /);
    expect(r.stderr).toContain('--help');
  });

  it.runIf(isRoot)('a kernel thread is ENOTSUP (6)', async () => {
    const r = await runCli(['skew', '2', '-o', '1s']);
    expect(r.code, r.stderr).toBe(EXIT.ENOTSUP);
    expect(r.stderr).toContain('kernel thread');
  });

  it.runIf(isRoot)('another user’s process is EPERM (4) for an unprivileged user', async () => {
    // Run a copy of the CLI as nobody: the repository may not be readable by that user.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'timeskew-cli-'));
    try {
      const addon = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(REPO);
      await cp(path.join(REPO, 'dist'), path.join(dir, 'dist'), { recursive: true });
      await copyFile(path.join(REPO, 'package.json'), path.join(dir, 'package.json'));
      await cp(path.join(REPO, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true });
      await mkdir(path.join(dir, 'build', 'Release'), { recursive: true });
      await copyFile(addon, path.join(dir, 'build', 'Release', 'timeskew.node'));
      await chmod(dir, 0o755);
      spawnSync('chmod', ['-R', 'a+rX', dir]);
      const victim = await spawnVictim('c');
      const r = await runCli(['skew', String(victim.pid), '-o', '1s'], { HOME: dir }, { uid: 65534, gid: 65534, cli: path.join(dir, 'dist', 'cli.js') });
      expect(r.code, r.stderr).toBe(EXIT.EPERM);
      expect(r.stderr).toMatch(/EPERM: .*\nhint: .*CAP_SYS_PTRACE/);
      expect(await inspectClock(victim.pid)).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.runIf(isRoot)('NODE_DEBUG=timeskew', () => {
  it('traces every step: targets, the addon, each native call with its report', async () => {
    const victim = await spawnVictim('c');
    const r = await runCli(['skew', String(victim.pid), '-o', '1s', '--duration', '10ms'], { NODE_DEBUG: 'timeskew' });
    expect(r.code, r.stderr).toBe(EXIT.OK);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('TIMESKEW '));
    const text = lines.join('\n');
    expect(text).toContain(`targets: ${victim.pid}`);
    expect(text).toMatch(/loading the addon .*\.node/);
    expect(text).toMatch(new RegExp(`install pid ${victim.pid}: mask=1 `));
    expect(text).toMatch(new RegExp(`installed pid ${victim.pid}: threads=1 movedThreads=0 pause=`));
    expect(text).toMatch(new RegExp(`restore pid ${victim.pid}: restored=true codeRetained=false threads=1`));
    const quiet = await runCli(['status', String(victim.pid)], { NODE_DEBUG: '' });
    expect(quiet.stderr).not.toContain('TIMESKEW');
  });
});

