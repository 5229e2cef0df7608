// `npm run bench`: builds what it needs (the C victim; the addon when native/ is newer than it),
// runs the four experiments and writes bench/results.json, bench/RESULTS.md and the charts.
//
//   node bench/out/main.js [--quick] [--only=percall,pause,update,scale] [--pause=THREADS[:MODE]]
//   node bench/out/main.js --render      (rewrite the reports from bench/results.json)
//
// --quick cuts every repetition count (for trying the bench out, not for publishing figures).
// Each experiment runs in its own worker process (this file with --unit=...), so that an engine
// call that never returns is diagnosed (where each thread is blocked) and killed, and reported,
// instead of hanging the bench.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { cpus, getPriority, loadavg, setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { type PerCallOptions, type PerCallResult, runPerCall } from './percall';
import { type PauseConfig, type PauseConfigResult, runPauseConfig } from './pause';
import { renderAll } from './report';
import { type ScaleOptions, type ScaleResult, runScale } from './scale';
import { nowNs, summarize } from './stats';
import { type UpdateOptions, type UpdateResult, runUpdate } from './update';
import { type EnginePath, PLACEMENT_LABELS, type Placement, VICTIM } from './victim';

const ROOT = join(__dirname, '..', '..');
const BENCH = join(ROOT, 'bench');

export interface Environment {
  date: string;
  kernel: string;
  cpu: string;
  cpus: number;
  clocksource: string;
  node: string;
  glibc: string;
  timeskew: string;
  uid: number;
  loadavgBefore: number[];
  loadavgAfter: number[];
  durationSec: number;
  quick: boolean;
  threadPoolSize: number;
  /** kernel.sched_autogroup_enabled: whether a new session is its own scheduling group. */
  autogroup: string;
  /** nice of the harness's JavaScript thread, and of the thread-pool threads the engine runs on. */
  harnessNice?: number;
  engineNice?: number[];
}

export interface Results {
  environment: Environment;
  /** Sections that could not complete, and why. */
  errors: Record<string, string>;
  perCall?: PerCallResult;
  pause?: PauseConfigResult[];
  update?: UpdateResult[];
  scale?: ScaleResult[];
}

function log(msg: string): void {
  process.stderr.write(`[bench +${((nowNs() - started) / 1e9).toFixed(0)}s] ${msg}\n`);
}

// Workers count from the parent's start, so that the log reads as one timeline.
const started = Number(process.env.BENCH_STARTED_NS) || nowNs();

function newest(dir: string): number {
  let best = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    best = Math.max(best, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return best;
}

function build(): void {
  const source = join(BENCH, 'victim.c');
  if (!existsSync(VICTIM) || statSync(VICTIM).mtimeMs < statSync(source).mtimeMs) {
    log('compiling bench/victim.c');
    mkdirSync(dirname(VICTIM), { recursive: true });
    execFileSync(process.env.CC || 'cc', ['-O2', '-pthread', '-Wall', '-Wextra', '-o', VICTIM, source], { stdio: 'inherit' });
  }
  const addon = join(ROOT, 'build', 'Release', 'timeskew.node');
  const stale =
    !existsSync(addon) ||
    statSync(addon).mtimeMs < Math.max(newest(join(ROOT, 'native')), statSync(join(ROOT, 'binding.gyp')).mtimeMs);
  if (stale) {
    log('building the native addon (native/ is newer than build/Release/timeskew.node)');
    execFileSync('npm', ['run', 'build:native'], { cwd: ROOT, stdio: ['ignore', process.stderr, 'inherit'] });
  }
}

/** nice of every other thread of this process (the libuv pool among them), from /proc. */
function workerNice(): number[] {
  const values = new Set<number>();
  for (const tid of readdirSync('/proc/self/task')) {
    if (Number(tid) === process.pid) continue;
    const stat = read(`/proc/self/task/${tid}/stat`);
    values.add(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return [...values].sort((a, b) => a - b);
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

function environment(quick: boolean): Environment {
  let glibc = 'unknown';
  try {
    glibc = execFileSync('ldd', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.replace(/^ldd /, '');
  } catch {
    // not glibc, or no ldd
  }
  return {
    date: new Date().toISOString(),
    kernel: read('/proc/sys/kernel/osrelease'),
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    clocksource: read('/sys/devices/system/clocksource/clocksource0/current_clocksource'),
    node: process.version,
    glibc,
    timeskew: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version,
    uid: process.getuid?.() ?? -1,
    loadavgBefore: loadavg(),
    loadavgAfter: [],
    durationSec: 0,
    quick,
    threadPoolSize: Number(process.env.UV_THREADPOOL_SIZE) || 4,
    autogroup: read('/proc/sys/kernel/sched_autogroup_enabled'),
  };
}

function pauseConfigs(quick: boolean): PauseConfig[] {
  const configs: PauseConfig[] = [];
  for (const threads of [1, 100, 1000]) {
    for (const mode of ['sleep', 'spin'] as const) {
      // Sleeping threads do not compete for the CPU, so the session cannot matter there.
      const placements: Placement[] = mode === 'spin' ? ['grandchild', 'child', 'own-session'] : ['grandchild', 'child'];
      for (const placement of placements) {
        configs.push({
          threads,
          mode,
          placement,
          reps: quick ? 2 : threads === 1 ? 15 : threads === 100 ? 9 : 7,
          minReps: quick ? 1 : 3,
          budgetMs: quick ? 5_000 : 30_000,
          hardBudgetMs: 0.5 * (threads >= 1000 && mode === 'spin' ? SPIN_1000_TIMEOUT_MS : PAUSE_TIMEOUT_MS),
          updatesPerRep: quick ? 5 : threads >= 1000 && mode === 'spin' ? 5 : 20,
        });
      }
    }
  }
  return configs;
}

const PAUSE_TIMEOUT_MS = 90_000;
const SPIN_1000_TIMEOUT_MS = 150_000;

/** One experiment, run in its own process: a hung engine call can then be diagnosed and killed. */
type Unit =
  | { kind: 'percall'; options: PerCallOptions }
  | { kind: 'pause'; config: PauseConfig }
  | { kind: 'update'; path: EnginePath; options: UpdateOptions }
  | { kind: 'scale'; path: EnginePath; options: ScaleOptions };

function unitName(unit: Unit): string {
  switch (unit.kind) {
    case 'percall':
      return 'per-call cost';
    case 'pause':
      return `pause: ${unit.config.threads} ${unit.config.mode === 'spin' ? 'spinning' : 'sleeping'} thread(s), ${PLACEMENT_LABELS[unit.config.placement]}`;
    case 'update':
      return `update: target ${unit.path === 'helper' ? 'a child of the caller' : 'not a child'}`;
    case 'scale':
      return `scale: ${unit.options.processes} idle processes, ${unit.path}`;
  }
}

/** How long a unit may take before it is declared hung (generous: a loaded machine is slow). */
function unitTimeoutMs(unit: Unit): number {
  const override = Number(process.env.BENCH_UNIT_TIMEOUT_MS);
  if (override > 0) return override;
  switch (unit.kind) {
    case 'percall':
      return 600_000;
    case 'pause':
      return unit.config.threads >= 1000 && unit.config.mode === 'spin' ? SPIN_1000_TIMEOUT_MS : PAUSE_TIMEOUT_MS;
    case 'update':
      return 180_000;
    case 'scale':
      return 600_000;
  }
}

async function runUnitHere(unit: Unit): Promise<unknown> {
  switch (unit.kind) {
    case 'percall':
      return runPerCall(unit.options, log);
    case 'pause':
      return runPauseConfig(unit.config, (partial) => process.stdout.write(`PARTIAL ${JSON.stringify(partial)}\n`));
    case 'update':
      return runUpdate(unit.path, unit.options, log);
    case 'scale':
      return runScale(unit.path, unit.options, log);
  }
}

/** The harness thread's nice, after the thread pool has started (see worker()). */
async function reniceHarness(): Promise<number> {
  // The harness's own JavaScript thread gets nice -10 so that it still answers beside 1,000
  // spinning threads (at nice 0 one of its wake-ups could wait a second). The thread pool is
  // started first, so the engine's threads (and the helper processes they fork) stay at nice 0
  // like in any Node process, and the victims reset themselves to nice 0: the pause figures are
  // the engine's, unhelped.
  await access('/');
  try {
    setPriority(-10);
  } catch {
    log('note: could not renice the harness thread; wall times beside spinning threads will be long');
  }
  return getPriority();
}

async function worker(encoded: string): Promise<void> {
  const unit = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')) as Unit;
  const nice = await reniceHarness();
  const result = await runUnitHere(unit);
  process.stdout.write(`RESULT ${JSON.stringify({ result, nice, engineNice: workerNice() })}\n`);
  process.exit(0);
}

/** Where every thread of a hung worker (and its helper processes) is blocked, and what its targets look like. */
function diagnose(pid: number): string {
  const notes: string[] = [];
  const describeTask = (p: number, t: string): string | undefined => {
    const syscall = read(`/proc/${p}/task/${t}/syscall`).split(' ');
    const wchan = read(`/proc/${p}/task/${t}/wchan`);
    if (wchan === 'do_epoll_wait' || wchan === 'futex_do_wait' || wchan === '0' || wchan === 'unknown') return undefined;
    const nr = Number(syscall[0]);
    const arg0 = syscall[1] ? Number.parseInt(syscall[1], 16) : Number.NaN;
    const name = { 61: 'wait4', 247: 'waitid', 0: 'read', 7: 'poll', 35: 'nanosleep' }[nr] ?? `syscall ${syscall[0]}`;
    return `thread ${t} blocked in ${name}(${Number.isFinite(arg0) ? arg0 : '?'}) [${wchan}]`;
  };
  const visit = (p: number, role: string): void => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    const blocked = tasks.map((t) => describeTask(p, t)).filter((x): x is string => !!x);
    if (blocked.length) notes.push(`${role} ${p}: ${blocked.join('; ')}`);
    // Threads it traces, grouped by process and state.
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === p) continue;
      let states: string[] = [];
      try {
        states = readdirSync(`/proc/${entry}/task`).map((t) => {
          const status = read(`/proc/${entry}/task/${t}/status`);
          return tasks.includes(/TracerPid:\s+(\d+)/.exec(status)?.[1] ?? '') ? (/State:\s+(\S)/.exec(status)?.[1] ?? '?') : '';
        });
      } catch {
        continue;
      }
      const traced = states.filter(Boolean);
      if (traced.length) {
        const counts: Record<string, number> = {};
        for (const st of traced) counts[st] = (counts[st] ?? 0) + 1;
        notes.push(`process ${entry}: ${traced.length} thread(s) traced by it, states ${JSON.stringify(counts)}`);
      }
    }
  };
  visit(pid, 'bench worker');
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = read(`/proc/${entry}/stat`);
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid && read(`/proc/${entry}/cmdline`) === read(`/proc/${pid}/cmdline`)) visit(Number(entry), 'engine helper');
  }
  return notes.join(' | ') || 'no thread blocked in a wait: just slow';
}

/** A tracer waiting on a process whose traced threads are all zombies will wait forever. */
const isDeadlock = (diagnosis: string): boolean => /states \{"Z":\d+\}/.test(diagnosis);

interface UnitOutcome {
  result?: unknown;
  nice?: number;
  engineNice?: number[];
  error?: string;
}

function runUnit(unit: Unit): Promise<UnitOutcome> {
  const child = spawn(process.execPath, [__filename, `--unit=${Buffer.from(JSON.stringify(unit)).toString('base64')}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_STARTED_NS: String(started) },
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
  });
  return new Promise((resolve) => {
    let hung: string | undefined;
    const timer = setTimeout(() => {
      const diagnosis = diagnose(child.pid!);
      hung = isDeadlock(diagnosis)
        ? `engine deadlocked (did not finish in ${unitTimeoutMs(unit) / 1000} s): ${diagnosis}`
        : `did not finish in ${unitTimeoutMs(unit) / 1000} s; at that moment: ${diagnosis}`;
      log(`${unitName(unit)}: ${hung}`);
      // SIGTERM: Node dies at once (no exit handlers to join a blocked thread-pool thread); the
      // victims and helper processes follow through PR_SET_PDEATHSIG, and traced threads are
      // released by the kernel when their tracer dies.
      child.kill('SIGTERM');
    }, unitTimeoutMs(unit));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      const partial = out.split('\n').filter((l) => l.startsWith('PARTIAL ')).pop();
      if (!line && partial) {
        // Hung or died mid-way: keep what was measured before, and say why it stopped.
        resolve({ result: JSON.parse(partial.slice(8)), error: hung ?? `the bench worker exited (${signal ?? `status ${code}`}) mid-way` });
        return;
      }
      if (line) {
        const outcome = JSON.parse(line.slice(7)) as UnitOutcome;
        // The figures came, but the process could not exit: a thread-pool thread is still blocked.
        if (hung) outcome.error = `the worker reported, then could not exit; ${hung}`;
        resolve(outcome);
      } else {
        resolve({ error: hung ?? `the bench worker exited (${signal ?? `status ${code}`}) without a result` });
      }
    });
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const unitArg = args.find((a) => a.startsWith('--unit='));
  if (unitArg) return worker(unitArg.slice(7));
  if (args.includes('--render')) {
    // Re-render RESULTS.md, the charts and the README section from an existing results.json.
    const existing = JSON.parse(readFileSync(join(BENCH, 'results.json'), 'utf8')) as Results;
    log(`wrote ${renderAll(existing, BENCH).map((p) => p.slice(ROOT.length + 1)).join(', ')}`);
    return;
  }
  const quick = args.includes('--quick');
  const onlyArg = args.find((a) => a.startsWith('--only='));
  const only = new Set((onlyArg ? onlyArg.slice(7) : 'percall,pause,update,scale').split(','));
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('the bench runs on Linux x86_64 only');
  if (process.getuid?.() !== 0) log('warning: not root; ptrace of the victims may be refused (kernel.yama.ptrace_scope)');
  build();

  const results: Results = { environment: environment(quick), errors: {} };
  const jsonPath = join(BENCH, 'results.json');
  const save = (): void => writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  const run = async (unit: Unit): Promise<unknown> => {
    log(unitName(unit));
    const outcome = await runUnit(unit);
    if (outcome.nice !== undefined) {
      results.environment.harnessNice = outcome.nice;
      results.environment.engineNice = outcome.engineNice;
    }
    if (outcome.error) {
      results.errors[unitName(unit)] = outcome.error;
      log(`${unitName(unit)} failed: ${outcome.error}`);
    }
    return outcome.result;
  };

  if (only.has('percall')) {
    results.perCall = (await run({ kind: 'percall', options: { rounds: quick ? 2 : 7, reps: quick ? 3 : 5, repMs: quick ? 30 : 60 } })) as
      | PerCallResult
      | undefined;
    save();
  }
  if (only.has('pause')) {
    const filter = args.find((a) => a.startsWith('--pause='))?.slice(8);
    results.pause = [];
    for (const config of pauseConfigs(quick).filter((c) => !filter || `${c.threads}:${c.mode}`.startsWith(filter))) {
      const result = (await run({ kind: 'pause', config })) as PauseConfigResult | undefined;
      const error = results.errors[unitName({ kind: 'pause', config })];
      if (result && error) {
        result.error = error;
        result.hung = error.startsWith('engine deadlocked');
        result.timedOut = !result.hung && error.includes('did not finish');
      }
      results.pause.push(result ?? hungPause(config, error ?? 'no result'));
      save();
    }
  }
  if (only.has('update')) {
    results.update = [];
    for (const path of ['in-process', 'helper'] as const) {
      const options = { updates: quick ? 200 : 2000, windows: quick ? 3 : 9, updatesPerWindow: quick ? 50 : 200 };
      const result = (await run({ kind: 'update', path, options })) as UpdateResult | undefined;
      if (result) results.update.push(result);
      save();
    }
  }
  if (only.has('scale')) {
    results.scale = [];
    for (const path of ['in-process', 'helper'] as const) {
      const options = { processes: quick ? 200 : 1000, reps: quick ? 1 : 3, paths: [path] };
      const result = (await run({ kind: 'scale', path, options })) as ScaleResult | undefined;
      if (result) results.scale.push(result);
      save();
    }
  }
  results.environment.loadavgAfter = loadavg();
  results.environment.durationSec = Math.round((nowNs() - started) / 1e9);

  save();
  const written = renderAll(results, BENCH);
  log(`wrote ${[jsonPath, ...written].map((p) => p.slice(ROOT.length + 1)).join(', ')}`);
}

/** A pause configuration whose worker never reported: an empty row carrying the diagnosis. */
function hungPause(config: PauseConfig, error: string): PauseConfigResult {
  const empty = summarize([]);
  const ops = { threads: config.threads, pauseNs: empty, maxThreadPauseNs: empty, wallNs: empty, movedThreads: Number.NaN, switchesPerThread: Number.NaN };
  return {
    error,
    hung: error.startsWith('engine deadlocked'),
    timedOut: error.includes('did not finish') && !error.startsWith('engine deadlocked'),
    busyRetries: 0,
    codeRetained: 0,
    threads: config.threads,
    mode: config.mode,
    placement: config.placement,
    path: config.placement === 'child' ? 'helper' : 'in-process',
    reps: 0,
    sampledThreads: 0,
    skew: [],
    restore: [],
    updateWallNs: [],
    updateSwitches: [],
    summary: { skew: ops, restore: ops, update: { wallNs: empty, switchesTotal: 0, stopped: false } },
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
