// Turning "a process and its descendants" or "everything in a cgroup" into a list of pids, for the
// CLI's --tree and --cgroup (and, later, a library-level skewProcesses). Both read /proc or
// /sys/fs/cgroup once and return a snapshot: a process that exits afterwards is simply gone by the
// time it is skewed (ESRCH), which callers of a group treat as "nothing to do", not as a failure.

import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { debug } from './debug';
import { TimeSkewError } from './errors';
import { validatePid } from './options';

/** Where cgroup v2 (or the v1 hierarchy a relative path is resolved in) is mounted. */
export const CGROUP_ROOT = '/sys/fs/cgroup';

/** The parent pid from /proc/PID/stat, or undefined when the process is gone (or unreadable). */
async function parentOf(pid: number, procRoot: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(procRoot, String(pid), 'stat'), 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so parse after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

/**
 * `pid` and all its descendants (children, grandchildren, ...), parents before their children.
 * Built from the ppid of every process in /proc, so it needs no kernel option (unlike
 * /proc/PID/task/TID/children). Rejects ESRCH when `pid` itself does not exist.
 */
export async function expandTree(pid: number, procRoot = '/proc'): Promise<number[]> {
  const root = validatePid(pid);
  if ((await parentOf(root, procRoot)) === undefined) {
    throw new TimeSkewError('ESRCH', 'no such process', { pid: root, hint: 'check the pid with `ps -p PID`' });
  }
  const children = new Map<number, number[]>();
  const entries = await readdir(procRoot);
  await Promise.all(
    entries.map(async (name) => {
      if (!/^\d+$/.test(name)) return;
      const child = Number(name);
      const parent = await parentOf(child, procRoot);
      if (parent === undefined) return; // exited while we looked: not part of the tree any more
      const list = children.get(parent);
      if (list) list.push(child);
      else children.set(parent, [child]);
    }),
  );
  const tree: number[] = [];
  const queue = [root];
  const seen = new Set<number>();
  while (queue.length > 0) {
    const next = queue.shift()!;
    if (seen.has(next)) continue; // pid reuse could in theory make a cycle out of a stale snapshot
    seen.add(next);
    tree.push(next);
    queue.push(...(children.get(next) ?? []).sort((a, b) => a - b));
  }
  debug('expandTree %d: %d process(es): %s', root, tree.length, tree.join(' '));
  return tree;
}

/** The directory of a cgroup given as a directory, its cgroup.procs file, or a path under CGROUP_ROOT. */
async function resolveCgroupDir(given: string, cgroupRoot: string): Promise<string> {
  if (typeof given !== 'string' || given === '') {
    throw new TimeSkewError('EINVAL', 'cgroup path is empty', {
      hint: `pass a cgroup directory, e.g. ${cgroupRoot}/system.slice/nginx.service`,
    });
  }
  const candidates = path.basename(given) === 'cgroup.procs' ? [path.dirname(given)] : [given];
  // "/kubepods.slice/..." as printed by /proc/PID/cgroup is relative to the cgroup mount.
  if (!given.startsWith(cgroupRoot + '/') && given !== cgroupRoot) candidates.push(path.join(cgroupRoot, given));
  for (const dir of candidates) {
    try {
      if ((await stat(path.join(dir, 'cgroup.procs'))).isFile()) return dir;
    } catch {
      // try the next form
    }
  }
  throw new TimeSkewError('EINVAL', `no cgroup at ${JSON.stringify(given)} (looked for ${candidates.map((d) => path.join(d, 'cgroup.procs')).join(' and ')})`, {
    hint: `pass a cgroup directory, e.g. ${cgroupRoot}/system.slice/nginx.service or the path shown in /proc/PID/cgroup`,
  });
}

/**
 * The pids in cgroup `cgroupPath` and in all the cgroups below it (a container's cgroup may have
 * sub-cgroups), in ascending order. `cgroupPath` is a cgroup directory, its cgroup.procs file, or a
 * path relative to /sys/fs/cgroup such as "/system.slice/foo.service" from /proc/PID/cgroup.
 * Rejects EINVAL when there is no such cgroup; an empty cgroup gives an empty list.
 */
export async function expandCgroup(cgroupPath: string, cgroupRoot = CGROUP_ROOT): Promise<number[]> {
  const top = await resolveCgroupDir(cgroupPath, cgroupRoot);
  const pids = new Set<number>();
  const walk = async (dir: string): Promise<void> => {
    let procs: string;
    try {
      procs = await readFile(path.join(dir, 'cgroup.procs'), 'utf8');
    } catch (err) {
      if (dir === top) {
        throw new TimeSkewError('EPERM', `cannot read ${path.join(dir, 'cgroup.procs')}: ${(err as Error).message}`, {
          hint: 'reading another cgroup needs root, or mount the host cgroup file system into the container',
        });
      }
      return; // a sub-cgroup removed while we walked
    }
    for (const line of procs.split('\n')) if (/^\d+$/.test(line)) pids.add(Number(line));
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    await Promise.all(entries.filter((e) => e.isDirectory()).map((e) => walk(path.join(dir, e.name))));
  };
  await walk(top);
  const list = [...pids].sort((a, b) => a - b);
  debug('expandCgroup %s (%s): %d process(es): %s', cgroupPath, top, list.length, list.join(' '));
  return list;
}
