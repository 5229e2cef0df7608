#!/usr/bin/env node
// The `timeskew` command: skew, restore and inspect the clocks of running processes, or start a
// program whose clock is skewed from its first instruction. A thin layer over the library: every
// failure is a TimeSkewError whose code picks the exit status, so scripts can branch on it.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { debug } from './debug';
import { formatDuration, parseDuration } from './duration';
import { TimeSkewError, type TimeSkewErrorCode } from './errors';
import { CLOCK_IDS, type ClockId, type SkewHandle, type SkewOptions, inspectClock, restoreClock, skewClock } from './index';
import { launchStopped, waitForExit } from './launch';
import { expandCgroup, expandTree } from './targets';

/** Exit statuses, one per failure class. */
export const EXIT = Object.freeze({
  OK: 0,
  /** Any failure without a class of its own (EIO, ENOSPC, EFAULT, ETIMEDOUT, EUNKNOWN, ...). */
  FAILURE: 1,
  /** Bad command line or bad argument (EINVAL). */
  USAGE: 2,
  /** No such process (or it exited), an empty cgroup, no target left. */
  ESRCH: 3,
  /** Not allowed to trace the target. */
  EPERM: 4,
  /** Already skewed (without --replace), traced by a debugger, or transiently busy. */
  EBUSY: 5,
  /** Nothing timeskew can hook: kernel thread, 32-bit process, unsupported vDSO or architecture. */
  ENOTSUP: 6,
  /** run: the program exists but cannot be executed (as in shells). */
  CANNOT_EXECUTE: 126,
  /** run: no such program (as in shells). */
  NOT_FOUND: 127,
});

const CODE_EXIT: Partial<Record<TimeSkewErrorCode, number>> = {
  EINVAL: EXIT.USAGE,
  ESRCH: EXIT.ESRCH,
  EPERM: EXIT.EPERM,
  EBUSY: EXIT.EBUSY,
  ENOTSUP: EXIT.ENOTSUP,
};

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };
const ENOENT = 2;

/** A command line the CLI cannot make sense of: exit status 2 and a pointer to --help. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof TimeSkewError) return CODE_EXIT[err.code] ?? EXIT.FAILURE;
  return EXIT.FAILURE;
}

// ---- help ---------------------------------------------------------------------------------------

const CLOCK_LIST = Object.keys(CLOCK_IDS).join(', ');

const EXIT_TEXT = `Exit status:
  0    success
  1    any other failure (EIO, ...)
  2    usage: bad command line, offset, duration, clock or cgroup (EINVAL)
  3    no such process, or it exited; an empty cgroup (ESRCH)
  4    not permitted to trace the process (EPERM): run as root or with CAP_SYS_PTRACE
  5    already skewed (use --replace), traced by a debugger, or busy (EBUSY)
  6    cannot be skewed: kernel thread, 32-bit process, unsupported system (ENOTSUP)
  128+N  skew, run: stopped by signal N (130 for SIGINT, 143 for SIGTERM), after restoring
  run: the program's own exit status; 127 no such program, 126 cannot execute it`;

const HELP: Record<string, string> = {
  main: `timeskew: skew the clock of one running Linux process, by pid, through its vDSO.

Usage:
  timeskew skew <pid...> --offset <duration> [options]   skew running processes
  timeskew restore <pid...> [--tree] [--cgroup PATH]     remove their skew
  timeskew status <pid...> [--tree] [--cgroup PATH]      show their skew
  timeskew run --offset <duration> [options] -- <command> [args...]
                                                          start a program already skewed
  timeskew help <command>                                 help for one command
  timeskew --version

Durations are Go-style: -10m, 1h30m, -1.5s, 250ms, 72h.
watchmaker (Chaos Mesh) flags work too: timeskew -pid 1234 -sec_delta -600 -clk_ids CLOCK_REALTIME

Set NODE_DEBUG=timeskew to trace every step on stderr.

${EXIT_TEXT}`,

  skew: `Usage: timeskew skew <pid...> --offset <duration> [options]

Skews the clocks of the given processes. Without --duration, --every or --hold the skew stays
in place after timeskew exits, until \`timeskew restore <pid>\` (or the process exits or execs).
If any process cannot be skewed, those already skewed are restored and nothing is left behind.

Options:
  -o, --offset <duration>  the offset to add, e.g. -10m, 1h30m, -1.5s (required unless --sec/--nsec)
      --sec <n>            the offset in seconds (may be negative or fractional)
      --nsec <n>           nanoseconds added to --sec
  -c, --clock <name>       a clock to skew; repeat or separate with commas. Default CLOCK_REALTIME
                           (also covers gettimeofday and time). Names: ${CLOCK_LIST}
                           (the CLOCK_ prefix and case are optional: realtime, monotonic)
  -d, --duration <d>       restore after this long, then exit
      --every <d>          with --duration: skew for --duration at the start of every period <d>,
                           e.g. --offset -600s --duration 10s --every 1m; runs until a signal
      --count <n>          with --every: stop after n periods
      --hold               keep the skew until SIGINT, SIGTERM or SIGHUP, then restore
      --tree               also skew every descendant of each pid (read from /proc)
      --cgroup <path>      also skew every process in this cgroup and its sub-cgroups (repeatable):
                           a directory such as /sys/fs/cgroup/system.slice/x.service, or the path
                           from /proc/PID/cgroup. Processes that exit meanwhile are skipped.
      --replace            replace a skew that is already installed instead of failing (EBUSY)
      --force-syscall      read the real time with a syscall instead of the vDSO fast path
      --json               one JSON object per line on stdout instead of text
  -h, --help               this help

watchmaker aliases: -pid <pid> (repeatable), -sec_delta <s>, -nsec_delta <ns>, -clk_ids <a,b>

While timeskew waits (--duration, --every, --hold), Ctrl-C, SIGTERM or SIGHUP restores every
process first, then exits with 128+signal.

Examples:
  timeskew skew 1234 --offset -10m
  timeskew skew 1234 --offset 72h --clock CLOCK_REALTIME,CLOCK_MONOTONIC --duration 30s
  timeskew skew 1234 --tree --offset -600s --duration 10s --every 1m
  timeskew skew --cgroup /sys/fs/cgroup/kubepods.slice/.../cri-containerd-abc.scope --offset 1h --hold

${EXIT_TEXT}`,

  restore: `Usage: timeskew restore <pid...> [--tree] [--cgroup PATH] [--json]

Removes whatever skew is installed in the given processes, whoever installed it (another
timeskew, a crashed test run). A process with no skew is left alone and is not an error.

Options:
      --tree           also every descendant of each pid
      --cgroup <path>  also every process in this cgroup and its sub-cgroups (repeatable)
      --json           one JSON object per line on stdout
  -h, --help           this help

${EXIT_TEXT}`,

  status: `Usage: timeskew status <pid...> [--tree] [--cgroup PATH] [--json]

Shows the skew installed in each process, without stopping it: offset per clock, how each hooked
function reads the real time (trampoline = vDSO fast path, syscall = fallback), the pid and
version of the timeskew that installed it.

Options:
      --tree           also every descendant of each pid
      --cgroup <path>  also every process in this cgroup and its sub-cgroups (repeatable)
      --json           one JSON object per line on stdout, offsets as strings of nanoseconds
  -h, --help           this help

${EXIT_TEXT}`,

  run: `Usage: timeskew run --offset <duration> [options] [--] <command> [args...]

Starts <command> (looked up in PATH) with its clock already skewed before its first instruction:
the program is stopped right after execve, skewed, then continued. SIGINT, SIGTERM, SIGHUP and
SIGQUIT are forwarded to it. timeskew exits with the program's exit status (128+N when it was
killed by signal N). Programs it execs in turn run on the real clock; programs it forks inherit
the skew.

Options:
  -o, --offset <duration>  the offset, e.g. 1h, -10m, -1.5s
      --sec <n>, --nsec <n>
  -c, --clock <name>       clocks to skew (repeat or comma-separate); default CLOCK_REALTIME
      --force-syscall      read the real time with a syscall instead of the vDSO fast path
  -h, --help               this help

Example:
  timeskew run --offset 1h -- date +%s

${EXIT_TEXT}`,
};

// ---- command line -------------------------------------------------------------------------------

type Command = 'skew' | 'restore' | 'status' | 'run';

interface FlagSpec {
  key: keyof Parsed;
  value: boolean;
}

export interface Parsed {
  command: Command;
  pids: number[];
  offset?: string;
  sec?: string;
  nsec?: string;
  clocks: string[];
  duration?: string;
  every?: string;
  count?: string;
  hold: boolean;
  tree: boolean;
  cgroups: string[];
  replace: boolean;
  forceSyscall: boolean;
  json: boolean;
  help: boolean;
  /** run: the program and its arguments. */
  argv: string[];
}

const FLAGS: Readonly<Record<string, FlagSpec>> = {
  '--offset': { key: 'offset', value: true },
  '-o': { key: 'offset', value: true },
  '--sec': { key: 'sec', value: true },
  '--nsec': { key: 'nsec', value: true },
  '--clock': { key: 'clocks', value: true },
  '-c': { key: 'clocks', value: true },
  '--duration': { key: 'duration', value: true },
  '-d': { key: 'duration', value: true },
  '--every': { key: 'every', value: true },
  '--count': { key: 'count', value: true },
  '--hold': { key: 'hold', value: false },
  '--tree': { key: 'tree', value: false },
  '--cgroup': { key: 'cgroups', value: true },
  '--replace': { key: 'replace', value: false },
  '--force-syscall': { key: 'forceSyscall', value: false },
  '--json': { key: 'json', value: false },
  '--help': { key: 'help', value: false },
  '-h': { key: 'help', value: false },
  // Chaos Mesh watchmaker's Go flags, which accept one dash or two.
  '-pid': { key: 'pids', value: true },
  '--pid': { key: 'pids', value: true },
  '-sec_delta': { key: 'sec', value: true },
  '--sec_delta': { key: 'sec', value: true },
  '-nsec_delta': { key: 'nsec', value: true },
  '--nsec_delta': { key: 'nsec', value: true },
  '-clk_ids': { key: 'clocks', value: true },
  '--clk_ids': { key: 'clocks', value: true },
};

const ALLOWED: Readonly<Record<Command, ReadonlySet<keyof Parsed>>> = {
  skew: new Set<keyof Parsed>(['offset', 'sec', 'nsec', 'clocks', 'duration', 'every', 'count', 'hold', 'tree', 'cgroups', 'replace', 'forceSyscall', 'json', 'help', 'pids']),
  restore: new Set<keyof Parsed>(['tree', 'cgroups', 'json', 'help', 'pids']),
  status: new Set<keyof Parsed>(['tree', 'cgroups', 'json', 'help', 'pids']),
  run: new Set<keyof Parsed>(['offset', 'sec', 'nsec', 'clocks', 'forceSyscall', 'help']),
};

function parsePid(text: string, command: Command): number {
  if (!/^\d+$/.test(text) || Number(text) <= 0) {
    throw new UsageError(`not a pid: ${JSON.stringify(text)} (pids are positive integers)`, command);
  }
  return Number(text);
}

/** Parses argv (without node and the script). Throws UsageError; `help` set means print help. */
export function parseArgs(args: readonly string[]): Parsed {
  let rest = [...args];
  let command: Command;
  const first = rest[0];
  if (first === 'skew' || first === 'restore' || first === 'status' || first === 'run') {
    command = first;
    rest = rest.slice(1);
  } else if (first !== undefined && first.startsWith('-') && rest.some((a) => /^--?pid(=|$)/.test(a))) {
    command = 'skew'; // watchmaker-style: timeskew -pid 1234 -sec_delta -600
  } else {
    throw new UsageError(first === undefined ? 'no command given' : `unknown command ${JSON.stringify(first)}`);
  }

  const parsed: Parsed = {
    command, pids: [], clocks: [], cgroups: [], argv: [],
    hold: false, tree: false, replace: false, forceSyscall: false, json: false, help: false,
  };
  const seen = new Set<string>();
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--') {
      if (command !== 'run') throw new UsageError('"--" is only used by `timeskew run`', command);
      parsed.argv = rest.slice(i + 1);
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) {
      if (command === 'run') {
        parsed.argv = rest.slice(i); // the program starts at the first word that is not an option
        break;
      }
      parsed.pids.push(parsePid(arg, command));
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS[name];
    if (!spec) throw new UsageError(`unknown option ${name}`, command);
    if (!ALLOWED[command].has(spec.key)) throw new UsageError(`option ${name} does not apply to \`timeskew ${command}\``, command);
    if (!spec.value) {
      if (eq > 0) throw new UsageError(`option ${name} takes no value`, command);
      (parsed[spec.key] as boolean) = true;
      continue;
    }
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      // The value is always the next word, even when it starts with "-": --offset -10m.
      if (i + 1 >= rest.length) throw new UsageError(`option ${name} needs a value`, command);
      value = rest[++i];
    }
    if (spec.key === 'pids') parsed.pids.push(parsePid(value, command));
    else if (spec.key === 'clocks') parsed.clocks.push(...value.split(',').filter((c) => c.trim() !== ''));
    else if (spec.key === 'cgroups') parsed.cgroups.push(value);
    else {
      if (seen.has(spec.key)) throw new UsageError(`option ${name} given twice`, command);
      seen.add(spec.key);
      (parsed[spec.key] as string) = value;
    }
  }
  return parsed;
}

function normaliseClock(name: string, command: Command): ClockId {
  let upper = name.trim().toUpperCase();
  if (!upper.startsWith('CLOCK_')) upper = `CLOCK_${upper}`;
  if (!Object.hasOwn(CLOCK_IDS, upper)) {
    throw new UsageError(`unknown clock ${JSON.stringify(name)}; valid clocks: ${CLOCK_LIST}`, command);
  }
  return upper as ClockId;
}

function durationOption(text: string, flag: string, command: Command, positive: boolean): bigint {
  let ns: bigint;
  try {
    ns = parseDuration(text);
  } catch (err) {
    const bare = /^[+-]?\d+(\.\d+)?$/.test(text) ? ` (a duration needs a unit: did you mean ${text}s?)` : '';
    throw new UsageError(`${flag}: ${(err as Error).message}${bare}`, command);
  }
  if (positive && ns <= 0n) throw new UsageError(`${flag} must be positive, got ${text}`, command);
  return ns;
}

function numberOption(text: string, flag: string, command: Command, integer: boolean): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) {
    throw new UsageError(`${flag} must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(text)}`, command);
  }
  return value;
}

/** The SkewOptions a skew or run command line asks for; validates everything first. */
export function skewOptionsOf(p: Parsed): SkewOptions {
  const options: SkewOptions = {};
  if (p.offset !== undefined) {
    if (p.sec !== undefined || p.nsec !== undefined) throw new UsageError('give either --offset or --sec/--nsec, not both', p.command);
    options.offset = durationOption(p.offset, '--offset', p.command, false);
  } else if (p.sec !== undefined || p.nsec !== undefined) {
    if (p.sec !== undefined) options.sec = numberOption(p.sec, '--sec', p.command, false);
    if (p.nsec !== undefined) options.nsec = numberOption(p.nsec, '--nsec', p.command, true);
  } else {
    throw new UsageError('no offset given: pass --offset, e.g. --offset -10m', p.command);
  }
  if (p.clocks.length > 0) options.clockIds = [...new Set(p.clocks.map((c) => normaliseClock(c, p.command)))];
  if (p.replace) options.replace = true;
  if (p.forceSyscall) options.forceSyscall = true;
  return options;
}

// ---- output -------------------------------------------------------------------------------------

interface Output {
  json: boolean;
  /** A human line (text mode) or an event object (JSON mode). */
  emit(text: string, event: Record<string, unknown>): void;
  warn(text: string): void;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

function makeOutput(json: boolean): Output {
  return {
    json,
    emit(text, event) {
      process.stdout.write(json ? `${JSON.stringify(event, jsonReplacer)}\n` : `${text}\n`);
    },
    warn(text) {
      process.stderr.write(`timeskew: ${text}\n`);
    },
  };
}

function errorEvent(err: unknown, pid?: number): Record<string, unknown> {
  if (err instanceof TimeSkewError) {
    return { event: 'error', pid: err.pid ?? pid, code: err.code, message: err.message.split('\nhint:')[0], hint: err.hint };
  }
  return { event: 'error', pid, code: 'EUNKNOWN', message: err instanceof Error ? err.message : String(err) };
}

const ms = (ns: number): string => `${(ns / 1e6).toFixed(2)} ms`;

function describeMode(mode: Record<string, string>): string {
  const values = [...new Set(Object.values(mode))];
  return values.length === 1 ? values[0] : Object.entries(mode).map(([fn, m]) => `${fn}=${m}`).join(',');
}

// ---- targets and signals ------------------------------------------------------------------------

interface Target {
  pid: number;
  /** Found through --tree or --cgroup: vanishing is not an error. */
  fromGroup: boolean;
}

async function resolveTargets(p: Parsed): Promise<Target[]> {
  const targets = new Map<number, Target>();
  const add = (pid: number, fromGroup: boolean) => {
    if (!targets.has(pid)) targets.set(pid, { pid, fromGroup });
  };
  for (const pid of p.pids) {
    add(pid, false);
    if (p.tree) {
      for (const child of await expandTree(pid)) if (child !== process.pid) add(child, true);
    }
  }
  for (const cgroup of p.cgroups) {
    const pids = await expandCgroup(cgroup);
    if (pids.length === 0) debug('cgroup %s is empty', cgroup);
    for (const pid of pids) if (pid !== process.pid) add(pid, true);
  }
  const list = [...targets.values()];
  debug('targets: %s', list.map((t) => `${t.pid}${t.fromGroup ? '(group)' : ''}`).join(' ') || 'none');
  if (list.length === 0) {
    if (p.pids.length === 0 && p.cgroups.length === 0) throw new UsageError('no process given: name at least one pid, or --cgroup PATH', p.command);
    throw new TimeSkewError('ESRCH', `no process in ${p.cgroups.map((c) => JSON.stringify(c)).join(', ')}`, {
      hint: 'check the cgroup path and that the container is running',
    });
  }
  return list;
}

const isGone = (err: unknown): boolean => err instanceof TimeSkewError && err.code === 'ESRCH';

interface SignalTrap {
  readonly signal: AbortSignal;
  /** The first signal received, if any. */
  received(): NodeJS.Signals | undefined;
  dispose(): void;
}

function trapSignals(out: Output, onSecond: string): SignalTrap {
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    debug('received %s', sig);
    if (first === undefined) {
      first = sig;
      controller.abort();
    } else {
      out.warn(`${sig} again: ${onSecond}`);
    }
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, handler);
  return {
    signal: controller.signal,
    received: () => first,
    dispose: () => {
      for (const s of signals) process.off(s, handler);
    },
  };
}

// setTimeout holds at most 2^31-1 ms (about 24.8 days); longer waits are chained.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Resolves after `delayMs` (Infinity: never), or as soon as `signal` aborts. */
function sleep(delayMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || delayMs <= 0) return resolve();
    const deadline = performance.now() + delayMs;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      if (timer) clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const arm = () => {
      const left = deadline - performance.now();
      if (left <= 0) return done();
      timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    signal.addEventListener('abort', done);
    if (delayMs === Infinity) {
      // Nothing but a signal ends this wait; an interval keeps the event loop alive meanwhile.
      timer = setInterval(() => undefined, MAX_TIMER_MS);
      return;
    }
    arm();
  });
}

const nsToMs = (ns: bigint): number => Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;

// ---- commands -----------------------------------------------------------------------------------

async function commandSkew(p: Parsed, out: Output): Promise<number> {
  const options = skewOptionsOf(p);
  const durationNs = p.duration === undefined ? undefined : durationOption(p.duration, '--duration', 'skew', true);
  const everyNs = p.every === undefined ? undefined : durationOption(p.every, '--every', 'skew', true);
  const count = p.count === undefined ? undefined : numberOption(p.count, '--count', 'skew', true);
  if (everyNs !== undefined && durationNs === undefined) {
    throw new UsageError('--every needs --duration: how long each skew lasts (e.g. --duration 10s --every 1m)', 'skew');
  }
  if (everyNs !== undefined && durationNs !== undefined && durationNs >= everyNs) {
    throw new UsageError(`--duration (${p.duration}) must be shorter than --every (${p.every})`, 'skew');
  }
  if (count !== undefined && (everyNs === undefined || count < 1)) {
    throw new UsageError(everyNs === undefined ? '--count only applies with --every' : '--count must be at least 1', 'skew');
  }
  if (p.hold && durationNs !== undefined) throw new UsageError('--hold and --duration exclude each other', 'skew');
  if (p.pids.length === 0 && p.cgroups.length === 0) throw new UsageError('no process given: name at least one pid, or --cgroup PATH', 'skew');

  const waits = durationNs !== undefined || p.hold;
  const trap = trapSignals(out, 'still restoring, please wait');
  const handles = new Map<number, SkewHandle>();

  const restoreAll = async (reason: string): Promise<unknown> => {
    let failure: unknown;
    for (const [pid, handle] of [...handles]) {
      try {
        await handle.restore();
        handles.delete(pid);
        const report = handle.lastReport;
        if (!processExists(pid)) out.emit(`pid ${pid} exited`, { event: 'exited', pid });
        else {
          out.emit(`restored pid ${pid} (${reason}; paused ${ms(report.pauseNs)})`, {
            event: 'restored', pid, reason, pauseNs: report.pauseNs, threads: report.threads,
          });
        }
      } catch (err) {
        failure ??= err;
        report(out, err, pid);
      }
    }
    return failure;
  };

  const installAll = async (targets: Target[], cycle: number): Promise<void> => {
    for (const target of targets) {
      if (trap.signal.aborted) return;
      try {
        const handle = await skewClock(target.pid, options);
        handles.set(target.pid, handle);
        const report = handle.lastReport;
        const clocks = handle.clockIds.join(',');
        out.emit(
          `skewed pid ${target.pid} by ${formatDuration(handle.offsetNs)} on ${clocks} ` +
            `(${describeMode(handle.mode)}; ${report.threads} thread${report.threads === 1 ? '' : 's'}, paused ${ms(report.pauseNs)})`,
          {
            event: 'skewed', pid: target.pid, cycle, offsetNs: handle.offsetNs, offset: formatDuration(handle.offsetNs),
            clocks: handle.clockIds, mode: handle.mode, threads: report.threads, movedThreads: report.movedThreads, pauseNs: report.pauseNs,
          },
        );
      } catch (err) {
        if (isGone(err) && (target.fromGroup || cycle > 1)) {
          out.emit(`pid ${target.pid} exited; skipped`, { event: 'skipped', pid: target.pid, reason: 'exited' });
          continue;
        }
        throw err;
      }
    }
  };

  let cycle = 0;
  try {
    for (;;) {
      cycle++;
      const cycleStart = performance.now();
      let targets = await resolveTargets(p);
      if (cycle > 1) {
        // Explicit pids that exited since the last period are dropped, not errors.
        targets = targets.filter((t) => t.fromGroup || processExists(t.pid));
        if (targets.length === 0) throw new TimeSkewError('ESRCH', 'every process has exited', { hint: 'nothing left to skew' });
      }
      try {
        await installAll(targets, cycle);
      } catch (err) {
        // All or nothing: a process that cannot be skewed undoes the ones already skewed.
        if (handles.size > 0) await restoreAll('rolled back');
        throw err;
      }
      if (handles.size === 0 && !trap.signal.aborted) {
        throw new TimeSkewError('ESRCH', 'every process exited before it could be skewed', { hint: 'nothing left to skew' });
      }
      if (!waits && !trap.signal.aborted) {
        if (!out.json) {
          const pids = [...handles.keys()].join(' ');
          process.stdout.write(`the skew stays until \`timeskew restore ${pids}\` (or the process exits)\n`);
        }
        handles.clear(); // left installed on purpose
        return EXIT.OK;
      }
      const holdMs = durationNs === undefined ? Infinity : nsToMs(durationNs);
      debug('holding the skew for %s ms', holdMs);
      await sleep(holdMs, trap.signal);
      const failure = await restoreAll(trap.signal.aborted ? `signal ${trap.received()}` : 'duration elapsed');
      if (failure) throw failure;
      if (everyNs === undefined || trap.signal.aborted || (count !== undefined && cycle >= count)) break;
      const nextMs = cycleStart + nsToMs(everyNs) - performance.now();
      debug('next period in %s ms', nextMs.toFixed(1));
      if (!out.json) process.stdout.write(`next skew in ${formatDuration(BigInt(Math.max(0, Math.round(nextMs))) * 1_000_000n)}\n`);
      await sleep(nextMs, trap.signal);
      if (trap.signal.aborted) break;
    }
  } catch (err) {
    if (handles.size > 0) await restoreAll('error');
    throw err;
  } finally {
    if (handles.size > 0) await restoreAll(`signal ${trap.received()}`);
    trap.dispose();
  }
  const sig = trap.received();
  return sig ? 128 + (SIGNAL_NUMBERS[sig] ?? 0) : EXIT.OK;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function commandRestore(p: Parsed, out: Output): Promise<number> {
  const targets = await resolveTargets(p);
  let status: number = EXIT.OK;
  for (const target of targets) {
    try {
      if (!processExists(target.pid)) {
        throw new TimeSkewError('ESRCH', 'no such process', { pid: target.pid });
      }
      const removed = await restoreClock(target.pid);
      out.emit(removed ? `restored pid ${target.pid}` : `pid ${target.pid}: no skew installed`, {
        event: 'restored', pid: target.pid, restored: removed,
      });
    } catch (err) {
      if (isGone(err) && target.fromGroup) continue;
      status = status === EXIT.OK ? exitCodeFor(err) : status;
      report(out, err, target.pid);
    }
  }
  return status;
}

/** The message of an error as the CLI prints it: the library's hints name API options, ours name flags. */
function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err instanceof TimeSkewError && err.code === 'EBUSY' && /already skewed/.test(err.message)) {
    const pid = err.pid ?? 'PID';
    return `${err.message.split('\nhint:')[0]}\nhint: pass --replace to change it, or run \`timeskew restore ${pid}\` first`;
  }
  if (err instanceof TimeSkewError && err.syscall === 'execve') return err.message.replace(/^EINVAL: /, '');
  return err.message;
}

/** A failure about one process: text on stderr, and in JSON mode an error event on stdout too. */
function report(out: Output, err: unknown, pid?: number): void {
  if (out.json) out.emit('', errorEvent(err, pid));
  process.stderr.write(`timeskew: ${messageOf(err)}\n`);
}

async function commandStatus(p: Parsed, out: Output): Promise<number> {
  const targets = await resolveTargets(p);
  let status: number = EXIT.OK;
  const rows: string[][] = [];
  let showRate = false;
  for (const target of targets) {
    try {
      const s = await inspectClock(target.pid);
      if (s === null) {
        rows.push([String(target.pid), 'none', '-', '-', '-', '-', '-', '-']);
        if (out.json) out.emit('', { event: 'status', pid: target.pid, skewed: false });
        continue;
      }
      const offsets = Object.entries(s.clocks) as Array<[ClockId, bigint]>;
      const distinct = [...new Set(offsets.map(([, ns]) => ns))];
      const offsetText = distinct.length === 1 ? formatDuration(distinct[0]) : offsets.map(([c, ns]) => `${c}=${formatDuration(ns)}`).join(',');
      // Engines with rate support report how fast the skewed clocks run (1 = real speed).
      const rate = (s as { rate?: unknown }).rate;
      if (typeof rate === 'number' && rate !== 1) showRate = true;
      rows.push([
        String(target.pid), s.active ? 'skewed' : 'inactive', s.active ? offsetText || '-' : '-',
        offsets.map(([c]) => c).join(',') || '-', describeMode(s.mode), String(s.installerPid), s.version,
        typeof rate === 'number' ? String(rate) : '1',
      ]);
      if (out.json) {
        out.emit('', {
          event: 'status', pid: target.pid, skewed: s.active, active: s.active, version: s.version, installerPid: s.installerPid,
          clocks: Object.fromEntries(offsets.map(([c, ns]) => [c, { offsetNs: ns, offset: formatDuration(ns) }])), mode: s.mode,
          ...(typeof rate === 'number' ? { rate } : {}),
        });
      }
    } catch (err) {
      if (isGone(err) && target.fromGroup) continue;
      status = status === EXIT.OK ? exitCodeFor(err) : status;
      report(out, err, target.pid);
    }
  }
  if (!out.json && rows.length > 0) {
    const header = ['PID', 'STATE', 'OFFSET', 'CLOCKS', 'MODE', 'INSTALLER', 'VERSION', 'RATE'];
    // The RATE column only when some clock does not run at real speed.
    const table = [header, ...rows].map((row) => (showRate ? row : row.slice(0, -1)));
    const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
    for (const row of table) process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()}\n`);
  }
  return status;
}

async function commandRun(p: Parsed): Promise<number> {
  const options = skewOptionsOf(p);
  if (p.argv.length === 0) throw new UsageError('no command to run: timeskew run --offset 1h -- <command> [args...]', 'run');
  // Signals that arrive before the program runs are held, then forwarded once it is continued.
  let pid: number | undefined;
  let continued = false;
  const pending: NodeJS.Signals[] = [];
  const forward = (sig: NodeJS.Signals) => {
    debug('forwarding %s to pid %s', sig, pid ?? '(not started)');
    if (pid !== undefined && continued) {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    } else pending.push(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];
  for (const s of signals) process.on(s, forward);
  try {
    pid = launchStopped(p.argv[0], p.argv, process.env);
    try {
      const handle = await skewClock(pid, options);
      debug('run: pid %d skewed by %s (%s)', pid, formatDuration(handle.offsetNs), describeMode(handle.mode));
    } catch (err) {
      process.kill(pid, 'SIGKILL');
      await waitForExit(pid);
      throw err;
    }
    process.kill(pid, 'SIGCONT');
    continued = true;
    for (const sig of pending.splice(0)) process.kill(pid, sig);
    const status = await waitForExit(pid);
    return status.code ?? 128 + status.signal;
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs the CLI with `args` (argv without node and the script) and resolves with the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  debug('argv %j', args);
  const first = args[0];
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' ? args[1] : undefined;
    if (topic !== undefined && !(topic in HELP && topic !== 'main')) {
      process.stderr.write(`timeskew: no help for ${JSON.stringify(topic)}; commands: skew, restore, status, run\n`);
      return EXIT.USAGE;
    }
    (first === undefined ? process.stderr : process.stdout).write(`${HELP[topic ?? 'main']}\n`);
    return first === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    process.stdout.write(`${version()}\n`);
    return EXIT.OK;
  }
  let parsed: Parsed | undefined;
  try {
    parsed = parseArgs(args);
    if (parsed.help) {
      process.stdout.write(`${HELP[parsed.command]}\n`);
      return EXIT.OK;
    }
    const out = makeOutput(parsed.json);
    switch (parsed.command) {
      case 'skew':
        return await commandSkew(parsed, out);
      case 'restore':
        return await commandRestore(parsed, out);
      case 'status':
        return await commandStatus(parsed, out);
      case 'run':
        return await commandRun(parsed);
    }
  } catch (err) {
    const code = exitCodeFor(err);
    if (err instanceof UsageError) {
      const command = err.command ?? parsed?.command;
      process.stderr.write(`timeskew: ${err.message}\nsee \`timeskew ${command ? `${command} ` : ''}--help\`\n`);
    } else if (parsed?.command === 'run' && err instanceof TimeSkewError && err.syscall === 'execve') {
      process.stderr.write(`timeskew: ${messageOf(err)}\n`);
      return err.errno === ENOENT ? EXIT.NOT_FOUND : EXIT.CANNOT_EXECUTE;
    } else {
      report(makeOutput(parsed?.json ?? false), err);
    }
    debug('exit %d: %s', code, err instanceof Error ? err.stack : String(err));
    return code;
  }
}

if (typeof module !== 'undefined' && require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`timeskew: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(EXIT.FAILURE);
    },
  );
}
