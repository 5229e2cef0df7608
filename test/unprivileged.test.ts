// Without root: an ordinary user (nobody, 65534) may skew its own child process, and is refused
// (EPERM) for a process it does not own. The repository may sit where nobody cannot read it (CI
// clones as root), so the addon, the C victim and the driver script are copied into a fresh
// world-readable temporary directory, and the driver runs from there with uid/gid 65534.
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { victimPaths } from './support/build-victims';
import { DEFAULT_SLACK_NS, expectWithin, parseReadings, realNowNs } from './support/victim';

const NOBODY = 65534;
const SKEW_NS = -600_000_000_000n;
const REPO = path.resolve(__dirname, '..');
const DRIVER_TIMEOUT_MS = 60_000;
const isRoot = process.getuid?.() === 0;

interface Reading {
  before: string;
  line: string;
  after: string;
}

interface DriverReport {
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  groups: number[];
  pid: number;
  steps: string[];
  victimPid?: number;
  ready?: string;
  victimIds?: { uid: number[]; gid: number[]; ppid: number };
  install?: { modes: Record<string, string>; threads: number };
  skewed?: Reading;
  inspect?: { installerPid: number; mask: number; offsetsNs: string[]; active: boolean } | null;
  restore?: { restored: boolean; codeRetained: boolean };
  restored?: Reading;
  inspectAfter?: unknown;
  pid1Ids?: { uid: number[] };
  pid1?: { installed?: boolean; code?: string; message?: string };
  victimExit?: { code: number | null; signal: string | null };
  error?: { code?: string; message?: string };
}

const cleanup: string[] = [];
afterEach(async () => {
  for (const dir of cleanup.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A world-readable copy of what the driver needs; nothing in it is writable by nobody. */
async function stageFiles(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'timeskew-unprivileged-'));
  cleanup.push(dir);
  await chmod(dir, 0o755);
  const files: Array<[string, string, number]> = [
    [path.join(REPO, 'build', 'Release', 'timeskew.node'), 'timeskew.node', 0o755],
    [victimPaths.c, 'victim-c', 0o755],
    [path.join(__dirname, 'support', 'unprivileged-skewer.js'), 'unprivileged-skewer.js', 0o644],
  ];
  for (const [from, name, mode] of files) {
    const to = path.join(dir, name);
    await copyFile(from, to);
    await chmod(to, mode);
  }
  return dir;
}

/** Runs the driver as nobody and parses its single JSON line. */
function runDriver(script: string): Promise<{ report: DriverReport; code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      uid: NOBODY,
      gid: NOBODY,
      cwd: path.dirname(script),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`driver hung for ${DRIVER_TIMEOUT_MS} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, DRIVER_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close': the process exited and its stdout is fully read.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ report: JSON.parse(line) as DriverReport, code, signal });
      } catch {
        reject(new Error(`driver (code ${code}, signal ${signal}) printed no report; stdout: ${stdout} stderr: ${stderr}`));
      }
    });
  });
}

function expectReading(reading: Reading | undefined, offsetNs: bigint, label: string): void {
  expect(reading, label).toBeDefined();
  const r = parseReadings(reading!.line);
  const before = BigInt(reading!.before);
  const after = BigInt(reading!.after);
  for (const key of ['realtime', 'gettimeofday']) {
    expectWithin(r[key], before + offsetNs, after + offsetNs, DEFAULT_SLACK_NS, `${label}: ${key}`);
  }
}

describe('as an unprivileged user', () => {
  it.skipIf(!isRoot)('nobody skews and restores its own child, and gets EPERM for pid 1', { timeout: 90_000 }, async () => {
    const dir = await stageFiles();
    const start = realNowNs();
    const { report, code, signal } = await runDriver(path.join(dir, 'unprivileged-skewer.js'));
    const end = realNowNs();

    expect(report.error, JSON.stringify(report.error)).toBeUndefined();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    // The driver really ran as nobody, without supplementary groups (root's would leak in otherwise).
    expect({ uid: report.uid, gid: report.gid, euid: report.euid, egid: report.egid }).toEqual({
      uid: NOBODY,
      gid: NOBODY,
      euid: NOBODY,
      egid: NOBODY,
    });
    expect(report.groups.filter((g) => g !== NOBODY)).toEqual([]);
    // ... and so did its child, the victim (real, effective, saved, filesystem ids).
    expect(report.ready).toBe(`ready ${report.victimPid}`);
    expect(report.victimIds).toEqual({ uid: [NOBODY, NOBODY, NOBODY, NOBODY], gid: [NOBODY, NOBODY, NOBODY, NOBODY], ppid: report.pid });

    // The driver's clock is as unskewed as ours: its window lies inside our run.
    for (const reading of [report.skewed, report.restored]) {
      expect(BigInt(reading!.before)).toBeGreaterThanOrEqual(start - DEFAULT_SLACK_NS);
      expect(BigInt(reading!.after)).toBeLessThanOrEqual(end + DEFAULT_SLACK_NS);
    }

    expect(report.install!.modes).toEqual({ clock_gettime: 'trampoline', gettimeofday: 'trampoline', time: 'trampoline' });
    expectReading(report.skewed, SKEW_NS, 'skewed');
    expect(report.inspect).toMatchObject({ installerPid: report.pid, mask: 1, active: true });
    expect(report.inspect!.offsetsNs[0]).toBe(SKEW_NS.toString());

    expect(report.restore).toMatchObject({ restored: true, codeRetained: false });
    expectReading(report.restored, 0n, 'restored');
    expect(report.inspectAfter).toBeNull();

    expect(report.pid1Ids!.uid[0]).toBe(0);
    expect(report.pid1, JSON.stringify(report.pid1)).toMatchObject({ code: 'EPERM' });
    expect(report.victimExit).toEqual({ code: 9, signal: null });
  });
});
