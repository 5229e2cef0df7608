// Client for bench/victim.c: spawns it (directly, or through its --detach launcher so that the
// target is not a child of this process), and turns its stdout into request/reply lines.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const OUT_DIR = join(__dirname);
export const VICTIM = join(OUT_DIR, 'bin', 'victim');

/** How timeskew reaches the target: its own children go through a forked helper process. */
export type EnginePath = 'helper' | 'in-process';

/**
 * Where the target sits relative to the bench:
 *  - child: our own child (timeskew goes through its forked helper process);
 *  - grandchild: child of a launcher that stays its parent, same session (timeskew runs in-process);
 *  - own-session: the same in a new session: with CONFIG_SCHED_AUTOGROUP its threads then share
 *    the CPU as one group against the injector, as a server in another session or cgroup does.
 */
export type Placement = 'child' | 'grandchild' | 'own-session';

export const PLACEMENT_LABELS: Record<Placement, string> = {
  child: 'helper (child, same session)',
  grandchild: 'in-process (not a child, same session)',
  'own-session': 'in-process (not a child, own session)',
};

export interface SpawnOptions {
  placement: Placement;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

const LINE_TIMEOUT_MS = 120_000;

export class Victim {
  readonly child: ChildProcess;
  pid = 0;
  readonly #lines: string[] = [];
  readonly #waiters: Array<{ resolve(line: string): void; reject(err: Error): void }> = [];
  #partial = '';
  #ended: Error | undefined;
  #stderr = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(args: string[], options: SpawnOptions) {
    const launcher = { child: [], grandchild: ['--detach'], 'own-session': ['--setsid'] }[options.placement];
    const argv = [...launcher, ...args];
    this.child = spawn(VICTIM, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => this.#data(chunk));
    this.child.stdout!.on('end', () => this.#end(new Error(`victim ${argv.join(' ')} closed its output. ${this.#stderr}`)));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-2000);
    });
    this.child.on('error', (err) => this.#end(err));
    this.child.on('exit', (code, signal) => {
      this.#exit = { code, signal };
    });
    // A victim that dies with us must not take the bench down with EPIPE.
    this.child.stdin!.on('error', () => undefined);
  }

  /** Starts a victim and waits for its "ready <pid>" line (farm: collects the "pid" lines first). */
  static async start(args: string[], options: SpawnOptions): Promise<{ victim: Victim; pids: number[] }> {
    const victim = new Victim(args, options);
    const pids: number[] = [];
    for (;;) {
      const line = await victim.nextLine(options.readyTimeoutMs ?? 60_000);
      const [word, value] = line.split(' ');
      if (word === 'pid') {
        pids.push(Number(value));
      } else if (word === 'ready') {
        victim.pid = Number(value);
        return { victim, pids };
      } else {
        throw new Error(`unexpected line from victim: ${line}`);
      }
    }
  }

  /**
   * How the target died, if it did: the signal that killed our child, or what the launcher saw
   * happen to its child (it prints "target PID killed by signal N (name)" and exits 128 + N).
   */
  deathNote(): string | undefined {
    const launcherSaw = /target \d+ killed by signal \d+ \(([^)]*)\)/.exec(this.#stderr);
    if (launcherSaw) return `the target was killed by a signal: ${launcherSaw[1]}`;
    if (this.#exit?.signal) return `the target was killed by ${this.#exit.signal}`;
    if (this.#exit && this.#exit.code !== 0) return `the target exited with status ${this.#exit.code}`;
    return undefined;
  }

  /** Which engine path a target takes, from its real parent (as the engine decides it). */
  static pathOf(pid: number): EnginePath {
    return parentOf(pid) === process.pid ? 'helper' : 'in-process';
  }

  get path(): EnginePath {
    return Victim.pathOf(this.pid);
  }

  async request(line: string, timeoutMs = LINE_TIMEOUT_MS): Promise<string> {
    this.child.stdin!.write(`${line}\n`);
    return this.nextLine(timeoutMs);
  }

  nextLine(timeoutMs = LINE_TIMEOUT_MS): Promise<string> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`victim ${this.pid}: no reply in ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Closes stdin (the victim exits on EOF) and waits; SIGKILL (by pid) after a grace period. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    const timer = setTimeout(() => {
      // Our own processes, by pid: the target (it may be the launcher's child) and the launcher.
      if (this.pid > 0 && this.pid !== this.child.pid) safeKill(this.pid);
      if (this.child.pid !== undefined) safeKill(this.child.pid);
    }, 5_000);
    await exited;
    clearTimeout(timer);
  }

  #data(chunk: string): void {
    this.#partial += chunk;
    let at: number;
    while ((at = this.#partial.indexOf('\n')) >= 0) {
      const line = this.#partial.slice(0, at);
      this.#partial = this.#partial.slice(at + 1);
      const waiter = this.#waiters.shift();
      if (waiter) waiter.resolve(line);
      else this.#lines.push(line);
    }
  }

  #end(err: Error): void {
    this.#ended ??= err;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(err);
  }
}

export function safeKill(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

export function threadIds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * Sum of voluntary context switches over threads of `pid` (all, or the given sample): a ptrace stop
 * adds at least one to every stopped thread, and a stop always takes every thread.
 */
export function voluntarySwitches(pid: number, sample?: readonly number[]): { threads: number; voluntary: number } {
  let voluntary = 0;
  let threads = 0;
  for (const tid of sample ?? threadIds(pid)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue;
    }
    const match = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(text);
    if (match) {
      voluntary += Number(match[1]);
      threads++;
    }
  }
  return { threads, voluntary };
}
