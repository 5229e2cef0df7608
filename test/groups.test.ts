// Groups of processes (issue 5, item 6): skewProcesses() on a list of pids, a process tree, a cgroup v2
// group created by the test. Effects are measured inside the victims; a victim outside must stay exact.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProcessResult, type SkewGroup, TimeSkewError, inspectClock, skewProcesses } from '../lib/index';
import {
  type ModelVictim,
  type Report,
  closeAllModelVictims,
  rateOf,
  skewOf,
  spawnModelVictim,
} from './support/model-victim';

const SECOND = 1_000_000_000n;
const MS = 1_000_000n;
const TEN_MIN_BACK = -600n * SECOND;
const abs = (x: bigint): bigint => (x < 0n ? -x : x);

const groups: SkewGroup[] = [];
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.restore().catch(() => undefined)));
  await closeAllModelVictims();
});

async function group(...args: Parameters<typeof skewProcesses>): Promise<SkewGroup> {
  const g = await skewProcesses(...args);
  groups.push(g);
  return g;
}

function byPid(g: SkewGroup): Map<number, ProcessResult> {
  return new Map(g.results.map((r) => [r.pid, r]));
}

async function expectSkewed(v: ModelVictim, offset: bigint, label: string): Promise<void> {
  const r = await v.read('realtime');
  const error = skewOf(r) - offset;
  if (abs(error) > MS) throw new Error(`${label}: skew ${skewOf(r)} ns, expected ${offset} ns`);
}

/** Waits for a report of `pid` whose skew is within 1 ms of `offset` (and of generation >= gen). */
function reportWithSkew(v: ModelVictim, pid: number, offset: bigint, gen = 0, timeoutMs = 10_000): Promise<Report> {
  return v.nextReport(pid, (r) => r.gen >= gen && abs(skewOf(r) - offset) < MS, timeoutMs);
}

/** Polls `condition` every 20 ms for up to 5 s (results are recorded a moment after the skew lands). */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !condition(); i++) await new Promise((r) => setTimeout(r, 20));
}

/** A process that does not exist now (and, with pid_max far above, will not for a while). */
async function deadPid(): Promise<number> {
  const child = (await import('node:child_process')).spawn('true');
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('a list of pids', () => {
  it('skews each, reports an exited pid as exited and a busy one as failed, and restores all', async () => {
    const [a, b, busy, outside] = await Promise.all([spawnModelVictim(), spawnModelVictim(), spawnModelVictim(), spawnModelVictim()]);
    // `busy` carries a skew installed by another process: EBUSY without replace.
    const root = path.resolve(__dirname, '..');
    await promisify(execFile)(process.execPath, ['-e', `
      const b = require(${JSON.stringify(path.join(root, 'node_modules', 'node-gyp-build'))})(${JSON.stringify(root)});
      b.install({ pid: ${busy.pid}, mask: 1, offsetsNs: new Array(12).fill(0n), replace: false, forceSyscall: false })
        .then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });`]);
    const gone = await deadPid();

    const g = await group([a.pid, b.pid, gone, busy.pid, a.pid], { offset: '-10m' });
    const results = byPid(g);
    expect(g.results).toHaveLength(4); // duplicates collapse
    expect(results.get(a.pid)).toMatchObject({ status: 'skewed', inherited: false });
    expect(results.get(b.pid)).toMatchObject({ status: 'skewed' });
    expect(results.get(gone)).toEqual({ pid: gone, status: 'exited' });
    const failed = results.get(busy.pid);
    expect(failed?.status).toBe('failed');
    expect(failed?.status === 'failed' && failed.error).toBeInstanceOf(TimeSkewError);
    expect(failed?.status === 'failed' && failed.error.code).toBe('EBUSY');
    expect(g.ok).toBe(false);
    expect(g.failures.map((f) => f.pid)).toEqual([busy.pid]);
    expect(g.pids.sort()).toEqual([a.pid, b.pid].sort());

    await expectSkewed(a, TEN_MIN_BACK, 'a');
    await expectSkewed(b, TEN_MIN_BACK, 'b');
    await expectSkewed(outside, 0n, 'outside');

    await g.update({ offset: '1h' });
    await expectSkewed(a, 3600n * SECOND, 'a after group update');
    await expectSkewed(b, 3600n * SECOND, 'b after group update');

    // One member exits: restore() is not an error for it.
    await b.close();
    await g.restore();
    expect(g.restored).toBe(true);
    await expectSkewed(a, 0n, 'a restored');
    expect(await inspectClock(busy.pid)).not.toBeNull(); // someone else's skew: untouched
  });

  it('gives every member the same clock with `at` and a rate (later members copy the first)', async () => {
    const victims = await Promise.all([spawnModelVictim(), spawnModelVictim(), spawnModelVictim()]);
    const g = await group(victims.map((v) => v.pid), { at: '2001-09-09T01:46:40Z', rate: 1.5 });
    expect(g.ok).toBe(true);
    const readings = [];
    for (const v of victims) readings.push(await v.read('realtime'));
    // Each reading is the shared clock at its own real time: project them onto one instant.
    const t0 = readings[0]!.a;
    const projected = readings.map((r) => r.v - ((r.a - t0) * 3n) / 2n);
    const spread = projected.reduce((m, p) => (p > m ? p : m), projected[0]!) - projected.reduce((m, p) => (p < m ? p : m), projected[0]!);
    console.info(`group with at + rate 1.5: members agree to ${spread} ns`);
    expect(spread).toBeLessThan(MS);
    expect(readings[0]!.v / SECOND).toBeGreaterThanOrEqual(1_000_000_000n);
    expect(Math.abs(rateOf(await victims[2]!.measure('realtime', 300), 1.5).rate - 1.5)).toBeLessThan(1e-6);
  });

  it('rejects bad targets and options before touching anything', async () => {
    const v = await spawnModelVictim();
    for (const target of [[], [0], { tree: -1 }, { cgroup: '' }, { tree: v.pid, cgroup: '/x' }, 'all', null]) {
      await expect(skewProcesses(target as never, { offset: '1s' })).rejects.toMatchObject({ code: 'EINVAL' });
    }
    await expect(skewProcesses([v.pid], { offset: '1 s' })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(skewProcesses([v.pid], { offset: '1s', follow: 'yes' as never })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(skewProcesses([v.pid], { offset: '1s', pollIntervalMs: 1 })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(skewProcesses({ tree: await deadPid() }, { offset: '1s' })).rejects.toMatchObject({ code: 'ESRCH' });
    await expect(skewProcesses({ cgroup: '/sys/fs/cgroup/no/such/group' }, { offset: '1s' })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await inspectClock(v.pid)).toBeNull();
  });
});

describe('a process tree', () => {
  it('skews the root and its descendants; with follow, also children born later, forked ones and exec()ed ones', async () => {
    const root = await spawnModelVictim();
    const outside = await spawnModelVictim();
    const early = await root.spawnReporter(20);
    const events: string[] = [];
    const g = await group({ tree: root.pid }, { offset: '-10m', follow: true, pollIntervalMs: 50, onResult: (r) => events.push(`${r.pid}:${r.status}`) });
    expect(g.following).toBe(true);
    expect(g.pids.sort()).toEqual([root.pid, early].sort());
    await expectSkewed(root, TEN_MIN_BACK, 'root');
    await reportWithSkew(root, early, TEN_MIN_BACK);

    // Born later (fork + exec: no inherited skew): found by polling.
    const late = await root.spawnReporter(20);
    await reportWithSkew(root, late, TEN_MIN_BACK);
    await waitFor(() => byPid(g).get(late)?.status === 'skewed');
    expect(byPid(g).get(late)).toMatchObject({ status: 'skewed', inherited: false });

    // Forked without exec after the skew: it carries the skew already, and the group adopts it.
    const forked = await root.forkReporter(20);
    await reportWithSkew(root, forked, TEN_MIN_BACK);
    await waitFor(() => byPid(g).get(forked)?.status === 'skewed');
    expect(byPid(g).get(forked)).toMatchObject({ status: 'skewed', inherited: true });

    // exec() drops the skew (same pid, generation 1): the group skews it again.
    process.kill(early, 'SIGUSR1');
    const again = await reportWithSkew(root, early, TEN_MIN_BACK, 1);
    expect(again.gen).toBe(1);
    await waitFor(() => { const r = byPid(g).get(early); return r?.status === 'skewed' && r.reinstalls === 1; });
    expect(byPid(g).get(early)).toMatchObject({ status: 'skewed', reinstalls: 1 });

    // A member that exits is reported, not failed.
    process.kill(late, 'SIGKILL');
    await waitFor(() => byPid(g).get(late)?.status === 'exited');
    expect(byPid(g).get(late)?.status).toBe('exited');
    expect(g.ok).toBe(true);
    await expectSkewed(outside, 0n, 'outside the tree');

    await g.restore();
    expect(g.following).toBe(false);
    await expectSkewed(root, 0n, 'root restored');
    await reportWithSkew(root, early, 0n, 1);
    await reportWithSkew(root, forked, 0n);
    // Nothing is skewed after restore, not even a child born right now.
    const after = await root.spawnReporter(20);
    await new Promise((r) => setTimeout(r, 150));
    await reportWithSkew(root, after, 0n);
    expect(events).toContain(`${late}:exited`);
  });

  it('without follow, takes a snapshot: later children stay exact', async () => {
    const root = await spawnModelVictim();
    const child = await root.spawnReporter(20);
    const g = await group({ tree: root.pid }, { offset: '1h' });
    expect(g.following).toBe(false);
    await reportWithSkew(root, child, 3600n * SECOND);
    const late = await root.spawnReporter(20);
    await new Promise((r) => setTimeout(r, 200));
    await reportWithSkew(root, late, 0n);
    await g.restore();
  });
});

/** The cgroup v2 mount point, from /proc/mounts (here /sys/fs/cgroup/unified on a hybrid host). */
async function cgroup2Mount(): Promise<string | undefined> {
  const mounts = await readFile('/proc/mounts', 'utf8');
  for (const line of mounts.split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (type === 'cgroup2') return mountPoint;
  }
  return undefined;
}

describe('a cgroup v2 group', () => {
  it('skews every process in it, and with follow those moved in later; a process outside stays exact', async (ctx) => {
    const mount = await cgroup2Mount();
    if (!mount) {
      ctx.skip();
      return;
    }
    const dir = path.join(mount, `timeskew-test-${process.pid}`);
    await mkdir(dir);
    const victims: ModelVictim[] = [];
    try {
      const [inside, outside, later] = await Promise.all([spawnModelVictim(), spawnModelVictim(), spawnModelVictim()]);
      victims.push(inside, outside, later);
      await writeFile(path.join(dir, 'cgroup.procs'), `${inside.pid}\n`);
      expect((await readFile(`/proc/${inside.pid}/cgroup`, 'utf8'))).toContain(`/timeskew-test-${process.pid}`);
      const child = await inside.spawnReporter(20); // forked inside: in the cgroup too

      const g = await group({ cgroup: dir }, { offset: '-10m', rate: 1.0005, follow: true, pollIntervalMs: 50 });
      expect(g.pids.sort()).toEqual([inside.pid, child].sort());
      expect(g.ok).toBe(true);
      const r = await inside.read('realtime');
      expect(abs(skewOf(r) - TEN_MIN_BACK)).toBeLessThan(5n * MS);
      await inside.nextReport(child, (rep) => abs(skewOf(rep) - TEN_MIN_BACK) < 5n * MS);

      // The process outside the group: exact, measured from inside it (skew and rate).
      expect(abs(skewOf(await outside.read('realtime')))).toBeLessThan(MS);
      const outsideRate = rateOf(await outside.measure('realtime', 2000), 1);
      const insideRate = rateOf(await inside.measure('realtime', 2000), 1.0005);
      console.info(`cgroup: outside rate error ${((outsideRate.rate - 1) * 1e6).toFixed(4)} ppm, inside ${((insideRate.rate - 1.0005) * 1e6).toFixed(4)} ppm`);
      expect(Math.abs(outsideRate.rate - 1)).toBeLessThan(1e-6);
      expect(Math.abs(insideRate.rate - 1.0005)).toBeLessThan(1e-6);
      expect(await inspectClock(outside.pid)).toBeNull();

      // Moved into the group later: follow skews it, on the group's clock (copied from a member).
      await writeFile(path.join(dir, 'cgroup.procs'), `${later.pid}\n`);
      await waitFor(() => byPid(g).get(later.pid)?.status === 'skewed');
      expect(byPid(g).get(later.pid)?.status).toBe('skewed');
      const a = await inside.read('realtime');
      const b = await later.read('realtime');
      // Same clock: b's reading is a's plus 1.0005 x the real time in between (5 ms slack).
      expect(abs(b.v - a.v - ((b.a - a.a) * 10005n) / 10000n)).toBeLessThan(5n * MS);

      await g.restore();
      for (const v of [inside, later]) expect(abs(skewOf(await v.read('realtime')))).toBeLessThan(MS);
      await inside.nextReport(child, (rep) => abs(skewOf(rep)) < MS);
    } finally {
      // Move everything back out, then remove the group.
      const procs = await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const pid of procs.split('\n').filter(Boolean)) {
        await writeFile(path.join(mount, 'cgroup.procs'), `${pid}\n`).catch(() => undefined);
      }
      await closeAllModelVictims();
      await rmdir(dir);
    }
  });
});
