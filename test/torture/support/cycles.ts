// One skew/restore cycle for the torture cases, with two rules that keep one engine failure from
// hiding the rest of a case's evidence:
//  - every engine call has a deadline: a hung operation fails the case at once, saying where,
//    instead of eating the whole suite's time budget;
//  - an operation that does not do its whole job (install rejected, restore that leaves code
//    behind) is recorded as a problem, cleaned up, and the case carries on measuring what it is
//    about; each case asserts at the end that no problem was recorded.
import { readFileSync, readdirSync } from 'node:fs';
import { TimeSkewError, inspectClock, restoreClock, skewClock, type SkewHandle, type SkewOptions } from '../../../lib/index';

export const ENGINE_DEADLINE_MS = 30_000;
/**
 * A pause (first thread stopped to last released) this long freezes the target visibly: counted as
 * a problem. The README promises well under a millisecond; 500 ms leaves room for a loaded CI
 * machine that preempts the injector while the target is stopped (measured: up to ~200 ms).
 */
export const LONG_PAUSE_MS = 500;

/**
 * A wall-clock budget for a case's loop, so that the suite stays within its 15 minutes even when
 * the engine is slow; running out is recorded as a problem, with how far the loop got.
 */
export class Budget {
  private readonly start = Date.now();
  constructor(private readonly seconds: number) {}
  /** True (and records why) once the budget is spent. */
  spent(problems: Problems, done: number, total: number, what = 'cycles'): boolean {
    if (Date.now() - this.start < this.seconds * 1000) return false;
    problems.add(`time budget of ${this.seconds} s spent after ${done} of ${total} ${what}`);
    return true;
  }
}

/**
 * An engine call that never answered. Fatal for the case: the call holds one of libuv's four
 * worker threads for good, so every later call (of this process, not just of timeskew) may queue
 * behind it. Cases rethrow it rather than count it and carry on.
 */
export class EngineHang extends Error {}

export function withDeadline<T>(promise: Promise<T>, what: string, ms = ENGINE_DEADLINE_MS, diagnose?: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const details = diagnose ? ` [${diagnose()}]` : '';
      reject(new EngineHang(`${what}: no answer within ${ms} ms (the engine hung)${details}`));
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export interface CycleReport {
  installed: boolean;
  movedOnInstall: number;
  movedOnRestore: number;
  maxPauseNs: number;
  threads: number;
}

interface RestoreReport {
  movedThreads: number;
  pauseNs: number;
  threads: number;
  restored?: boolean;
  codeRetained?: boolean;
}

export class Problems {
  readonly list: string[] = [];
  add(problem: string): void {
    this.list.push(problem);
  }
  /** Prints up to `max` of them, greppable. */
  print(tag: string, max = 10): void {
    for (const p of this.list.slice(0, max)) console.log(`torture: ${tag}-problem ${p}`);
    if (this.list.length > max) console.log(`torture: ${tag}-problem ... and ${this.list.length - max} more`);
  }
}

/** restoreClock until nothing is left (counted as a problem if one call was not enough). */
export async function cleanUp(pid: number, problems: Problems, label: string): Promise<void> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    await withDeadline(restoreClock(pid), `${label}: restoreClock`, ENGINE_DEADLINE_MS, () => diagnoseHang(pid));
    if ((await withDeadline(inspectClock(pid), `${label}: inspectClock`, ENGINE_DEADLINE_MS, () => diagnoseHang(pid))) === null) return;
    if (attempt === 1) problems.add(`${label}: restoreClock left timeskew's code in the target`);
  }
  problems.add(`${label}: 5 restoreClock calls could not remove timeskew's code`);
}

/** skewClock, then restore, recording whatever does not do its whole job. */
export async function skewRestore(
  pid: number,
  options: SkewOptions,
  problems: Problems,
  label: string,
  between?: (handle: SkewHandle) => Promise<void>,
): Promise<CycleReport> {
  const report: CycleReport = { installed: false, movedOnInstall: 0, movedOnRestore: 0, maxPauseNs: 0, threads: 0 };
  let handle: SkewHandle;
  try {
    handle = await withDeadline(skewClock(pid, options), `${label}: skewClock`, ENGINE_DEADLINE_MS, () => diagnoseHang(pid));
  } catch (err) {
    if (!(err instanceof TimeSkewError)) throw err;
    problems.add(`${label}: skewClock rejected: ${err.code}: ${err.message.split('\n')[0]}`);
    await cleanUp(pid, problems, `${label} (after the rejected skewClock)`);
    return report;
  }
  report.installed = true;
  report.movedOnInstall = handle.lastReport.movedThreads;
  report.maxPauseNs = handle.lastReport.pauseNs;
  report.threads = handle.lastReport.threads;
  if (handle.lastReport.pauseNs >= LONG_PAUSE_MS * 1e6) {
    problems.add(`${label}: skewClock stopped the target for ${(handle.lastReport.pauseNs / 1e6).toFixed(0)} ms`);
  }
  if (between) await between(handle);
  await withDeadline(handle.restore(), `${label}: restore`, ENGINE_DEADLINE_MS, () => diagnoseHang(pid));
  const r = handle.lastReport as RestoreReport;
  report.movedOnRestore = r.movedThreads;
  report.maxPauseNs = Math.max(report.maxPauseNs, r.pauseNs);
  if (r.pauseNs >= LONG_PAUSE_MS * 1e6) problems.add(`${label}: restore stopped the target for ${(r.pauseNs / 1e6).toFixed(0)} ms`);
  if (r.codeRetained || r.restored === false) {
    problems.add(`${label}: restore left code behind (${JSON.stringify(r)})`);
    await cleanUp(pid, problems, `${label} (after the incomplete restore)`);
  }
  return report;
}

function procField(path: string, re: RegExp): string {
  try {
    return re.exec(readFileSync(path, 'utf8'))?.[1] ?? '?';
  } catch {
    return 'gone';
  }
}

/**
 * For a hang report: every thread of the target (state, tracer, kernel wait channel) and every
 * busy thread of the injecting processes (in wait4: on which tid; otherwise its state/syscall).
 */
export function diagnoseHang(target: number, injectors: number[] = [process.pid]): string {
  const parts: string[] = [];
  try {
    for (const tid of readdirSync(`/proc/${target}/task`)) {
      const base = `/proc/${target}/task/${tid}`;
      const state = procField(`${base}/stat`, /\) (\S)/);
      const tracer = procField(`${base}/status`, /TracerPid:\s+(\d+)/);
      const wchan = procField(`${base}/wchan`, /^(.*)$/);
      parts.push(`target ${tid}: ${state} tracer=${tracer} wchan=${wchan}`);
    }
  } catch {
    parts.push(`target ${target}: gone`);
  }
  // Our own forked helpers (children of this process) may be the tracer that hangs.
  const all = new Set(injectors);
  if (all.has(process.pid)) {
    for (const tid of readdirSync('/proc/self/task')) {
      for (const child of procField(`/proc/self/task/${tid}/children`, /^(.*)$/).trim().split(/\s+/).filter(Boolean)) {
        all.add(Number(child));
      }
    }
  }
  for (const pid of all) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const call = procField(`/proc/${pid}/task/${tid}/syscall`, /^([^\n]*)/).split(' ');
        const wchan = procField(`/proc/${pid}/task/${tid}/wchan`, /^(.*)$/);
        const state = procField(`/proc/${pid}/task/${tid}/stat`, /\) (\S)/);
        // Idle threads (event loop, idle pool workers) wait in epoll or on a futex: skip those.
        if (call[0] === '61') parts.push(`injector ${pid} thread ${tid}: wait4(${parseInt(call[1], 16)})`);
        else if (!/^(202|232|281)$/.test(call[0])) parts.push(`injector ${pid} thread ${tid}: ${state} syscall ${call[0]} wchan=${wchan}`);
      }
    } catch {
      parts.push(`injector ${pid}: gone`);
    }
  }
  return parts.join('; ');
}
