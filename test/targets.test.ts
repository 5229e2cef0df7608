// lib/targets.ts: a process tree from the ppid in /proc/PID/stat, a cgroup's processes from
// cgroup.procs (sub-cgroups included). Fake /proc and cgroup trees pin the parsing; a real process
// tree checks it against the kernel.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimeSkewError } from '../lib/errors';
import { expandCgroup, expandTree } from '../lib/targets';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'timeskew-targets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fakeProc(processes: Record<number, { ppid: number; comm?: string }>): Promise<string> {
  const root = await mkdtemp(path.join(dir, 'proc-'));
  for (const [pid, { ppid, comm = 'x' }] of Object.entries(processes)) {
    await mkdir(path.join(root, pid));
    await writeFile(path.join(root, pid, 'stat'), `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194304 0 0\n`);
  }
  await mkdir(path.join(root, 'self')); // non-numeric entries are ignored
  return root;
}

describe('expandTree', () => {
  it('lists the process, then its descendants breadth first, from the ppid of every process', async () => {
    const proc = await fakeProc({
      1: { ppid: 0 },
      10: { ppid: 1 },
      11: { ppid: 10, comm: 'a) S 99 (tricky' }, // comm may hold spaces and parentheses
      12: { ppid: 10 },
      13: { ppid: 11 },
      20: { ppid: 1 },
    });
    expect(await expandTree(10, proc)).toEqual([10, 11, 12, 13]);
    expect(await expandTree(13, proc)).toEqual([13]);
    expect(await expandTree(1, proc)).toEqual([1, 10, 20, 11, 12, 13]);
  });

  it('rejects ESRCH for a process that does not exist, EINVAL for a bad pid', async () => {
    const proc = await fakeProc({ 1: { ppid: 0 } });
    await expect(expandTree(42, proc)).rejects.toMatchObject({ code: 'ESRCH', pid: 42 });
    await expect(expandTree(0, proc)).rejects.toBeInstanceOf(TimeSkewError);
    await expect(expandTree(1.5, proc)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('finds the real children and grandchildren of a process', async () => {
    const shell = spawn('sh', ['-c', 'sleep 30 & sh -c "sleep 30 & wait" & wait'], { stdio: 'ignore' });
    try {
      let tree: number[] = [];
      for (let i = 0; i < 200 && tree.length < 4; i++) {
        tree = await expandTree(shell.pid!);
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(tree[0]).toBe(shell.pid);
      expect(tree).toHaveLength(4);
      expect(await expandTree(process.pid)).toEqual(expect.arrayContaining([process.pid, ...tree]));
    } finally {
      for (const pid of (await expandTree(shell.pid!).catch(() => [])).reverse()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });
});

describe('expandCgroup', () => {
  async function fakeCgroups(): Promise<string> {
    const root = await mkdtemp(path.join(dir, 'cgroup-'));
    const tree: Record<string, string> = {
      '': '1\n',
      'kubepods.slice': '',
      'kubepods.slice/pod1': '',
      'kubepods.slice/pod1/ctr-a': '300\n100\n',
      'kubepods.slice/pod1/ctr-a/sub': '200\n100\n',
      'kubepods.slice/pod1/ctr-b': '400\n',
      'empty': '',
    };
    for (const [rel, procs] of Object.entries(tree)) {
      await mkdir(path.join(root, rel), { recursive: true });
      await writeFile(path.join(root, rel, 'cgroup.procs'), procs);
    }
    return root;
  }

  it('lists the pids of a cgroup and of every cgroup below it, sorted and without duplicates', async () => {
    const root = await fakeCgroups();
    expect(await expandCgroup(path.join(root, 'kubepods.slice/pod1/ctr-a'), root)).toEqual([100, 200, 300]);
    expect(await expandCgroup(path.join(root, 'kubepods.slice/pod1'), root)).toEqual([100, 200, 300, 400]);
    expect(await expandCgroup(path.join(root, 'empty'), root)).toEqual([]);
  });

  it('accepts the cgroup.procs file itself, and a path relative to the cgroup mount as in /proc/PID/cgroup', async () => {
    const root = await fakeCgroups();
    expect(await expandCgroup(path.join(root, 'kubepods.slice/pod1/ctr-b/cgroup.procs'), root)).toEqual([400]);
    expect(await expandCgroup('/kubepods.slice/pod1/ctr-b', root)).toEqual([400]);
    expect(await expandCgroup('kubepods.slice/pod1/ctr-b', root)).toEqual([400]);
  });

  it('rejects EINVAL for a path that is no cgroup', async () => {
    const root = await fakeCgroups();
    await expect(expandCgroup(path.join(root, 'nope'), root)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(expandCgroup('', root)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('reads a real cgroup: the one this process is in contains it', async () => {
    const lines = (await import('node:fs')).readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
    // cgroup v2 (the "0::" line) is mounted at /sys/fs/cgroup, or at /sys/fs/cgroup/unified on hybrid hosts.
    const v2 = lines.find((l) => l.startsWith('0::'))!.slice(3);
    const mounts = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'];
    for (const mount of mounts) {
      const pids = await expandCgroup(path.join(mount, v2)).catch(() => undefined);
      if (pids !== undefined && pids.length > 0) {
        expect(pids).toContain(process.pid);
        return;
      }
    }
    // No cgroup v2 visible here (a container without it): nothing to check.
  });
});
