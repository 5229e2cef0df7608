// Victims that are NOT children of the test process: test/victims/launcher.c sits in between and
// stays alive as the victim's parent and reaper. Two reasons:
//  - speed: for its own children timeskew forks a helper per operation (~37 ms); for anyone
//    else it works in-process, and the torture suite runs tens of thousands of operations;
//  - evidence: the launcher reports the victim's true exit status on fd 3, and can reap it only
//    once no tracer holds it, so "no zombie left behind" is observable from outside.
// The victim talks the usual line protocol on its stdin/stdout (the launcher never touches them).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { tortureVictimPaths } from '../../support/build-torture-victims';

export interface ExitStatus {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** Signal number that killed it, or null. */
  signal: number | null;
}

/** Splits a stream into lines and hands them out in order, with timeouts. */
export class LineQueue {
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ resolve(l: string): void; reject(e: Error): void; timer: NodeJS.Timeout }> = [];
  private partial = '';
  private ended: Error | undefined;

  constructor(stream: Readable, private readonly describe: () => string) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      for (const p of parts) this.push(p);
    });
    stream.on('end', () => this.end());
    stream.on('error', () => this.end());
  }

  private push(line: string): void {
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(line);
    } else this.lines.push(line);
  }

  private end(): void {
    if (this.ended) return;
    if (this.partial) this.push(this.partial);
    this.partial = '';
    this.ended = new Error(`${this.describe()}: stream ended`);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(this.ended);
    }
  }

  /** Lines already received and not yet taken. */
  drain(): string[] {
    return this.lines.splice(0);
  }

  next(timeoutMs = 30_000): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const w = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`${this.describe()}: no line within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }
}

export interface Detached {
  /** The victim's pid (the launcher's child). */
  pid: number;
  launcher: ChildProcess;
  /** Send a command and resolve with the next line. */
  request(line: string, timeoutMs?: number): Promise<string>;
  /** Send without waiting (e.g. `exit 3`). */
  send(line: string): void;
  nextLine(timeoutMs?: number): Promise<string>;
  /** The true exit status, as the launcher (the real parent) reaped it. */
  exited: Promise<ExitStatus>;
  /** Set once exited settles. */
  exitStatus: ExitStatus | undefined;
  /** Tail of the victim's stderr, for failure messages. */
  stderr(): string;
  /** `exit 0` if alive; SIGKILL after the grace period; resolves when the launcher is gone. */
  close(graceMs?: number): Promise<void>;
}

export interface DetachedOptions {
  uid?: number;
  gid?: number;
  /** Another copy of test/victims/launcher.c (one another user can run). */
  launcher?: string;
}

const live = new Set<Detached>();

/** Closes every detached victim still alive (afterEach/afterAll). */
export async function closeAllDetached(): Promise<void> {
  await Promise.all([...live].map((v) => v.close(1_000)));
}

export async function spawnDetached(program: string, args: string[] = [], opts: DetachedOptions = {}): Promise<Detached> {
  const launcher = spawn(opts.launcher ?? tortureVictimPaths.launcher, [program, ...args], {
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    uid: opts.uid,
    gid: opts.gid,
  });
  let stderrTail = '';
  let pid = -1;
  const describe = () => `${program} (pid ${pid}, launcher ${launcher.pid})` + (stderrTail ? `; stderr: ${stderrTail.trim()}` : '');
  launcher.stderr!.setEncoding('utf8').on('data', (c: string) => (stderrTail = (stderrTail + c).slice(-4096)));
  launcher.stdin!.on('error', () => {});
  const out = new LineQueue(launcher.stdout!, describe);
  const status = new LineQueue(launcher.stdio[3] as Readable, () => `launcher of ${describe()}`);
  const launcherGone = new Promise<void>((resolve) => launcher.once('exit', () => resolve()));

  const victim: Detached = {
    pid,
    launcher,
    request(line, timeoutMs) {
      const reply = out.next(timeoutMs);
      if (launcher.stdin!.writable) launcher.stdin!.write(line + '\n');
      return reply;
    },
    send(line) {
      if (launcher.stdin!.writable) launcher.stdin!.write(line + '\n');
    },
    nextLine: (timeoutMs) => out.next(timeoutMs),
    exited: undefined as unknown as Promise<ExitStatus>,
    exitStatus: undefined,
    stderr: () => stderrTail,
    async close(graceMs = 5_000) {
      const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
      if (!victim.exitStatus && pid > 0) {
        victim.send('exit 0');
        // Still there after the grace period (stopped, traced or wedged): SIGKILL works in every
        // state, but a victim still traced by a hung tracer in this process stays a zombie its
        // launcher cannot reap: give up on its status then, rather than hang.
        await Promise.race([victim.exited.catch(() => undefined), sleep(graceMs)]);
        if (!victim.exitStatus) {
          killQuietly(pid, 'SIGKILL');
          await Promise.race([victim.exited.catch(() => undefined), sleep(graceMs)]);
        }
      }
      if (launcher.exitCode === null && launcher.signalCode === null) {
        launcher.kill('SIGKILL');
        await Promise.race([launcherGone, sleep(graceMs)]);
      }
      launcher.stdin!.destroy();
      live.delete(victim);
    },
  };
  live.add(victim);

  try {
    const launched = /^launched (\d+)$/.exec(await status.next(10_000));
    if (!launched) throw new Error(`${describe()}: launcher did not report a pid`);
    pid = Number(launched[1]);
    victim.pid = pid;
    victim.exited = status.next(24 * 3600_000).then((line) => {
      const m = /^(exited|killed) (\d+)$/.exec(line);
      if (!m) throw new Error(`${describe()}: unexpected launcher report ${JSON.stringify(line)}`);
      const s: ExitStatus = m[1] === 'exited' ? { code: Number(m[2]), signal: null } : { code: null, signal: Number(m[2]) };
      victim.exitStatus = s;
      return s;
    });
    victim.exited.catch(() => undefined);
    const ready = await out.next(30_000);
    if (ready !== `ready ${pid}`) throw new Error(`${describe()}: expected "ready ${pid}", got ${JSON.stringify(ready)}`);
  } catch (err) {
    launcher.kill('SIGKILL');
    live.delete(victim);
    throw err;
  }
  return victim;
}

export function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The state letter of /proc/PID/stat (R, S, T, t, Z, ...), or undefined if there is no such process. */
export function procState(pid: number | string): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** State letter of every thread of pid. */
export function threadStates(pid: number): Map<number, string> {
  const states = new Map<number, string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const s = procState(`${pid}/task/${tid}`);
    if (s) states.set(Number(tid), s);
  }
  return states;
}

/** The TracerPid of every thread of pid. */
export function tracers(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    try {
      const m = /^TracerPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  });
}

export interface SpinStats {
  reads: bigint;
  bad: bigint;
  firstBad: string;
}

/** Parses `[stopped ]reads=<n> bad=<n> first_bad=<desc>`. */
export function parseSpinStats(line: string): SpinStats {
  const m = /reads=(\d+) bad=(\d+) first_bad=(\S+)/.exec(line);
  if (!m) throw new Error(`unexpected stats line: ${JSON.stringify(line)}`);
  return { reads: BigInt(m[1]), bad: BigInt(m[2]), firstBad: m[3] };
}

/** Polls until `check` returns true, or throws after timeoutMs. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000, stepMs = 2): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Prints one count in the greppable form `torture: <name>=<value>`. */
export function report(name: string, value: string | number | bigint): void {
  console.log(`torture: ${name}=${value}`);
}

/** With TORTURE_TRACE=<file>, appends a timestamped line there: where a long case is, if it hangs. */
export function trace(line: string): void {
  const file = process.env.TORTURE_TRACE;
  if (file) appendFileSync(file, `${new Date().toISOString()} ${line}\n`);
}
