// Issue 3, case 6: privilege.
//
// 1. As an unprivileged user (nobody), every operation on a root-owned target fails with EPERM
//    and a hint naming CAP_SYS_PTRACE and Yama, and the target is untouched.
// 2. Nothing in the library writes outside the target or widens privileges. An injector process
//    runs install, update, restore and inspect under strace (as nobody on a nobody-owned target,
//    and as root on a root-owned one); from the system calls it made:
//     - the only file it opened for writing is /proc/<target>/mem (beyond what Node itself opens
//       at start-up, measured by a run that does no operation), and it created, renamed,
//       removed or re-permissioned no file;
//     - every pwrite went to that file, and it never used process_vm_writev;
//     - every ptrace request named a thread of the target;
//     - it changed no credential (no setuid/setgid family, setgroups, capset), made no prctl that
//       lets others trace or inspect it (PR_SET_PTRACER, PR_SET_DUMPABLE, PR_SET_SECUREBITS,
//       PR_SET_KEEPCAPS, PR_CAP_AMBIENT, PR_SET_MM), sent no signal and executed nothing;
//    and the target's credentials and capabilities are the same afterwards.
// The addon, the injector script and the victim binaries run from a world-readable staging copy:
// the checkout may be unreadable for nobody (CI clones as root).
// Not covered here: a target that is the caller's own child goes through a forked helper, which
// strace -f would follow into the target (making it traced, so EBUSY); that path's one scoped
// widening, PR_SET_PTRACER for the helper while it runs, is in native/helper_process.cc.
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { fromNative } from '../../lib/errors';
import { tortureVictimPaths } from '../support/build-torture-victims';
import { readVdso } from '../support/vdso';
import { closeAllDetached, parseSpinStats, report, spawnDetached, tracers, type Detached } from './support/detached';
import { INJECTOR_SCRIPT, killAllInjectors, startInjector, type Op, type OpResult } from './support/injectors';

const NOBODY = 65534;
const REPO = path.resolve(__dirname, '..', '..');
const A = -600_000_000_000n;
const B = 3_600_000_000_000n;

let stage: string;
const staged = (name: string) => path.join(stage, name);

beforeAll(async () => {
  stage = await mkdtemp(path.join(os.tmpdir(), 'timeskew-torture-privilege-'));
  await chmod(stage, 0o755);
  const files: Array<[string, string, number]> = [
    [path.join(REPO, 'build', 'Release', 'timeskew.node'), 'timeskew.node', 0o755],
    [INJECTOR_SCRIPT, 'injector.js', 0o644],
    [tortureVictimPaths.launcher, 'launcher', 0o755],
    [tortureVictimPaths.torture, 'victim-torture', 0o755],
  ];
  for (const [from, name, mode] of files) {
    await copyFile(from, staged(name));
    await chmod(staged(name), mode);
  }
});

afterAll(async () => {
  await killAllInjectors();
  await closeAllDetached();
  if (stage) await rm(stage, { recursive: true, force: true });
});

const addonEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, TIMESKEW_ADDON: staged('timeskew.node') });

async function victimAs(uid: number | undefined): Promise<Detached> {
  const v = await spawnDetached(staged('victim-torture'), [], { uid, gid: uid, launcher: staged('launcher') });
  expect(await v.request(`spin 2 ${A}`)).toBe('spinning 2');
  expect(await v.request(`expect ${B}`)).toBe('ok');
  return v;
}

function credentials(pid: number): string {
  return readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .filter((l) => /^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):/.test(l))
    .join('\n');
}

const SEQUENCE: Array<[Op, bigint]> = [
  ['install', A],
  ['update', B],
  ['inspect', 0n],
  ['restore', 0n],
];

it('as nobody, every operation on a root-owned target is EPERM with a hint about CAP_SYS_PTRACE and Yama; the target is untouched', async () => {
  const victim = await victimAs(undefined); // root's
  const before = readVdso(victim.pid);
  const creds = credentials(victim.pid);
  const injector = await startInjector({ env: addonEnv(), uid: NOBODY, gid: NOBODY, command: [process.execPath, [staged('injector.js')]] });
  const results: Record<string, OpResult> = {};
  for (const [op, offset] of SEQUENCE) results[op] = await injector.run(op, victim.pid, offset);
  await injector.kill();

  for (const [op, r] of Object.entries(results)) {
    expect(r.ok, `${op} succeeded as nobody on a root-owned process`).toBe(false);
    // Through the library's error mapping, as a caller of skewClock() would see it.
    const err = fromNative(Object.assign(new Error(r.message), { code: r.code, hint: r.hint, errno: r.errno }), victim.pid);
    // restore and inspect cannot even read the target: those are EPERM too (EACCES maps to EPERM).
    expect(err.code, `${op}: ${r.code}: ${r.message}`).toBe('EPERM');
    expect(err.hint, `${op}: hint`).toMatch(/CAP_SYS_PTRACE/);
    expect(err.hint, `${op}: hint`).toMatch(/Yama|ptrace_scope/);
    report(`privilege-nobody-${op}`, `${err.code}: ${r.message} | hint: ${err.hint}`);
  }
  expect(readVdso(victim.pid).equals(before)).toBe(true);
  expect(credentials(victim.pid)).toBe(creds);
  expect(tracers(victim.pid).every((t) => t === 0)).toBe(true);
  expect(parseSpinStats(await victim.request('stats')).bad).toBe(0n);
});

interface Call {
  tid: number;
  name: string;
  args: string;
  ret: string;
}

/** Parses strace -ff output files (<base>.<tid>): one thread per file, so no unfinished/resumed lines. */
async function readTrace(base: string): Promise<Call[]> {
  const dir = path.dirname(base);
  const calls: Call[] = [];
  for (const file of await readdir(dir)) {
    if (!file.startsWith(path.basename(base) + '.')) continue;
    const tid = Number(file.slice(path.basename(base).length + 1));
    for (const line of (await readFile(path.join(dir, file), 'utf8')).split('\n')) {
      const m = /^([a-z0-9_]+)\((.*)\)\s+=\s+(.*)$/.exec(line);
      if (m) calls.push({ tid, name: m[1], args: m[2], ret: m[3] });
    }
  }
  return calls;
}

const TRACED = [
  'open', 'openat', 'openat2', 'creat', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2', 'mkdir', 'mkdirat',
  'rmdir', 'chmod', 'fchmod', 'fchmodat', 'chown', 'fchown', 'lchown', 'fchownat', 'truncate', 'ftruncate', 'link',
  'linkat', 'symlink', 'symlinkat', 'mknod', 'mknodat', 'pwrite64', 'pwritev', 'pwritev2', 'process_vm_writev',
  'ptrace', 'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setfsuid', 'setfsgid',
  'setgroups', 'capset', 'prctl', 'kill', 'tgkill', 'tkill', 'rt_sigqueueinfo', 'execve', 'execveat', 'mount',
  'umount2', 'chroot', 'unshare', 'setns',
];
const MODIFIES_FILES = new Set(['creat', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2', 'mkdir', 'mkdirat', 'rmdir', 'chmod', 'fchmod', 'fchmodat', 'chown', 'fchown', 'lchown', 'fchownat', 'truncate', 'ftruncate', 'link', 'linkat', 'symlink', 'symlinkat', 'mknod', 'mknodat', 'mount', 'umount2', 'chroot']);
const WIDENS = new Set(['setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setfsuid', 'setfsgid', 'setgroups', 'capset', 'unshare', 'setns']);
const WIDENING_PRCTL = /^PR_(SET_PTRACER|SET_DUMPABLE|SET_SECUREBITS|SET_KEEPCAPS|CAP_AMBIENT|SET_MM)\b/;

/** Runs the injector under strace, doing `ops` on `target`; returns the calls it made. */
async function tracedRun(uid: number | undefined, target: number | undefined, ops: Array<[Op, bigint]>, tag: string): Promise<{ calls: Call[]; results: OpResult[] }> {
  const base = path.join(stage, `trace-${tag}`);
  const strace = ['-f', '-ff', '-qq', '-s', '0', '-e', `trace=${TRACED.join(',')}`, '-e', 'signal=none', '-o', base];
  if (uid !== undefined) strace.push('-u', 'nobody');
  const injector = await startInjector({ env: addonEnv(), command: ['strace', [...strace, process.execPath, staged('injector.js')]] });
  const results: OpResult[] = [];
  for (const [op, offset] of ops) results.push(await injector.run(op, target!, offset));
  injector.child.stdin!.end();
  await injector.exited;
  const calls = await readTrace(base);
  for (const f of await readdir(stage)) if (f.startsWith(`trace-${tag}.`)) await rm(path.join(stage, f));
  return { calls, results };
}

const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/;

function writeOpens(calls: Call[]): string[] {
  return calls
    .filter((c) => /^(open|openat|openat2|creat)$/.test(c.name) && (c.name === 'creat' || WRITE_FLAGS.test(c.args)))
    .map((c) => /"([^"]*)"/.exec(c.args)?.[1] ?? c.args);
}

async function expectConfined(uid: number | undefined, label: string): Promise<void> {
  // What Node itself does at start-up and exit, with no operation: the baseline to subtract.
  const baseline = await tracedRun(uid, undefined, [], `${label}-baseline`);
  const baselineOpens = new Set(writeOpens(baseline.calls));

  const victim = await victimAs(uid);
  const creds = credentials(victim.pid);
  const tids = new Set(readdirSync(`/proc/${victim.pid}/task`).map(Number));
  const { calls, results } = await tracedRun(uid, victim.pid, SEQUENCE, label);
  for (const [i, r] of results.entries()) expect(r.ok, `${label}: ${SEQUENCE[i][0]}: ${r.code}: ${r.message}`).toBe(true);
  const mem = `/proc/${victim.pid}/mem`;

  const extraOpens = writeOpens(calls).filter((p) => !baselineOpens.has(p));
  expect(new Set(extraOpens), `${label}: files opened for writing`).toEqual(new Set([mem]));

  const memFds = new Set(
    calls.filter((c) => /^open/.test(c.name) && c.args.includes(`"${mem}"`) && /^\d+$/.test(c.ret)).map((c) => `${c.tid}:${c.ret}`),
  );
  const pwrites = calls.filter((c) => /^pwrite/.test(c.name));
  expect(pwrites.length, `${label}: no pwrite at all?`).toBeGreaterThan(0);
  for (const c of pwrites) expect(memFds.has(`${c.tid}:${c.args.split(',')[0]}`), `${label}: ${c.name}(${c.args}) not to ${mem}`).toBe(true);
  expect(calls.filter((c) => c.name === 'process_vm_writev'), label).toEqual([]);

  const ptraces = calls.filter((c) => c.name === 'ptrace');
  expect(ptraces.length).toBeGreaterThan(0);
  for (const c of ptraces) {
    const tid = Number(c.args.split(',')[1]);
    expect(tids.has(tid), `${label}: ptrace(${c.args}) is not about a thread of the target`).toBe(true);
  }

  const baselineNames = new Set(baseline.calls.map((c) => `${c.name}(${c.args})`));
  const fresh = calls.filter((c) => !baselineNames.has(`${c.name}(${c.args})`));
  expect(fresh.filter((c) => MODIFIES_FILES.has(c.name)).map((c) => `${c.name}(${c.args})`), `${label}: file changes`).toEqual([]);
  expect(fresh.filter((c) => WIDENS.has(c.name)).map((c) => `${c.name}(${c.args})`), `${label}: credential changes`).toEqual([]);
  expect(fresh.filter((c) => c.name === 'prctl' && WIDENING_PRCTL.test(c.args)).map((c) => `prctl(${c.args})`), label).toEqual([]);
  expect(fresh.filter((c) => /^(kill|tgkill|tkill|rt_sigqueueinfo)$/.test(c.name)).map((c) => `${c.name}(${c.args})`), `${label}: signals sent`).toEqual([]);
  expect(calls.filter((c) => /^execve/.test(c.name)).length, `${label}: executed something`).toBeLessThanOrEqual(1);

  expect(credentials(victim.pid)).toBe(creds);
  expect(parseSpinStats(await victim.request('stats')).bad).toBe(0n);
  const counts = new Map<string, number>();
  for (const c of calls) counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
  report(`privilege-${label}-syscalls`, [...counts].map(([n, k]) => `${n}:${k}`).join(','));
  report(`privilege-${label}-write-opens`, extraOpens.join(','));
  await victim.close();
}

it('nothing in the library writes outside the target or widens privileges (strace, as nobody and as root)', { timeout: 120_000 }, async () => {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' });
  } catch {
    throw new Error('this case needs strace (Debian package: strace)');
  }
  await expectConfined(NOBODY, 'nobody');
  await expectConfined(undefined, 'root');
});
