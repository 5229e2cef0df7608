// Client side of the victim line protocol (see test/victims/victim.c): spawns a
// victim, turns its stdout into a queue of lines and its clock readings into
// bigints. Tests skew a victim's clock and compare what it reads with ours.
import { spawn, type ChildProcess } from 'node:child_process';
import { victimPaths } from './build-victims';

export type VictimKind = 'c' | 'go' | 'python' | 'node';

export interface Victim {
  pid: number;
  kind: VictimKind;
  child: ChildProcess;
  /** Send a command, resolve with the next reply line. */
  request(line: string, timeoutMs?: number): Promise<string>;
  /** Read one more line (for `fork`/`exec`, which reply twice). */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Send `now` and parse the `key=ns` reply. */
  now(): Promise<Record<string, bigint>>;
  /** Resolves with the exit code once the process has exited (null if killed by a signal). */
  exitCode(): Promise<number | null>;
  /** Send `exit 0` if alive and wait for the exit; SIGKILL after 5 s. */
  close(): Promise<void>;
}

export interface SpawnVictimOptions {
  uid?: number;
  gid?: number;
  /** Extra argv for the victim. */
  args?: string[];
}

/** How long to wait for any single reply. Generous: a victim may be ptrace-stopped for a while. */
const LINE_TIMEOUT_MS = 30_000;
/** Interpreter start-up (pyenv shims, node) can be slow on a loaded CI machine. */
const READY_TIMEOUT_MS = 30_000;
const CLOSE_GRACE_MS = 5_000;
/** After `exit`, how long stdout may stay open (a leftover grandchild holds it) before waiters fail. */
const EXIT_DRAIN_MS = 500;

/** The slack tests usually allow between a victim's reading and our own clock. */
export const DEFAULT_SLACK_NS = 50_000_000n;

function commandFor(kind: VictimKind, args: string[]): [string, string[]] {
  switch (kind) {
    case 'c':
      return [victimPaths.c, args];
    case 'go':
      return [victimPaths.go, args];
    case 'python':
      return ['python3', [victimPaths.python, ...args]];
    case 'node':
      return [process.execPath, [victimPaths.node, ...args]];
  }
}

interface Waiter {
  resolve(line: string): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const live = new Set<Victim>();

/** Closes every victim not closed yet; handy in afterEach/afterAll. */
export async function closeAllVictims(): Promise<void> {
  await Promise.all([...live].map((v) => v.close()));
}

export async function spawnVictim(kind: VictimKind, opts: SpawnVictimOptions = {}): Promise<Victim> {
  const [cmd, argv] = commandFor(kind, opts.args ?? []);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], uid: opts.uid, gid: opts.gid });
  const name = `${kind} victim (pid ${child.pid ?? '?'})`;

  const lines: string[] = [];
  const waiters: Waiter[] = [];
  let partial = '';
  let stderrTail = '';
  let lastRequest = '(none)';
  let endError: Error | undefined; // set once no further line can arrive
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let stdoutEnded = false;

  const describe = () =>
    `${name}, last request ${JSON.stringify(lastRequest)}` +
    (stderrTail.trim() ? `; stderr:\n${stderrTail.trim()}` : '');

  const push = (line: string) => {
    const w = waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(line);
    } else lines.push(line);
  };

  // Waiters still pending when the victim is gone would otherwise hang until the test timeout.
  const finish = (err: Error) => {
    if (endError) return;
    if (partial) {
      push(partial);
      partial = '';
    }
    endError = err;
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  };

  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) push(p.replace(/\r$/, ''));
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4096);
  });
  // Writing to a dead victim raises EPIPE; the exit path reports the real problem.
  child.stdin!.on('error', () => {});

  const exitError = () =>
    new Error(`${describe()}: exited (code ${exitInfo?.code ?? 'null'}, signal ${exitInfo?.signal ?? 'none'})`);
  let resolveExit!: (code: number | null) => void;
  const exited = new Promise<number | null>((r) => (resolveExit = r));
  child.stdout!.on('end', () => {
    stdoutEnded = true;
    if (exitInfo) finish(exitError());
  });
  child.once('exit', (code, signal) => {
    exitInfo = { code, signal };
    live.delete(victim);
    resolveExit(code);
    // 'exit' can precede the last stdout data: finish on 'end', or after a grace period.
    if (stdoutEnded) finish(exitError());
    else setTimeout(() => finish(exitError()), EXIT_DRAIN_MS).unref();
  });
  child.once('error', (err) => {
    // Spawn failures (ENOENT, EPERM for uid/gid) come here and may never produce 'exit'.
    live.delete(victim);
    finish(new Error(`${describe()}: ${err.message}`));
    if (!exitInfo) resolveExit(null);
  });

  const nextLine = (timeoutMs = LINE_TIMEOUT_MS): Promise<string> => {
    const queued = lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (endError) return Promise.reject(endError);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`${describe()}: no reply within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      waiters.push(w);
    });
  };

  const request = (line: string, timeoutMs?: number): Promise<string> => {
    lastRequest = line;
    // Register the waiter before writing; the reply cannot overtake it anyway
    // (it arrives on a later tick), but this keeps the order obvious.
    const reply = nextLine(timeoutMs);
    if (child.stdin!.writable) child.stdin!.write(line + '\n');
    return reply;
  };

  const victim: Victim = {
    pid: child.pid ?? -1,
    kind,
    child,
    request,
    nextLine,
    async now() {
      return parseReadings(await request('now'));
    },
    exitCode: () => exited,
    async close() {
      if (!exitInfo && child.pid !== undefined) {
        if (child.stdin!.writable) child.stdin!.write('exit 0\n');
        // A victim left ptrace-stopped or wedged ignores `exit`; SIGKILL always works.
        const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      live.delete(victim);
      child.stdin!.destroy();
    },
  };
  live.add(victim);

  let ready: string;
  try {
    ready = await nextLine(READY_TIMEOUT_MS);
  } catch (err) {
    await victim.close();
    throw err;
  }
  const m = /^ready (\d+)$/.exec(ready);
  if (!m || Number(m[1]) !== child.pid) {
    await victim.close();
    throw new Error(`${describe()}: expected "ready ${child.pid}", got ${JSON.stringify(ready)}`);
  }
  return victim;
}

/**
 * Our own wall clock in ns, from Date.now(): millisecond resolution, so the
 * true time lies in [value, value + 1 ms). Tests allow far more slack anyway.
 * This process is never skewed, so it serves as the reference.
 */
export function realNowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Parses `key=<ns> key=<ns> ...`, with or without the fork child's `child ` prefix. */
export function parseReadings(line: string): Record<string, bigint> {
  const body = line.startsWith('child ') ? line.slice('child '.length) : line;
  const out: Record<string, bigint> = {};
  for (const token of body.trim().split(/\s+/)) {
    const m = /^([a-z_]+)=(-?\d+)$/.exec(token);
    if (!m) throw new Error(`not a clock readings line: ${JSON.stringify(line)}`);
    out[m[1]] = BigInt(m[2]);
  }
  return out;
}

function ms(ns: bigint): string {
  return `${(Number(ns) / 1e6).toFixed(3)} ms`;
}

/** Throws unless lo - slack <= value <= hi + slack, saying by how much it missed. */
export function expectWithin(value: bigint, lo: bigint, hi: bigint, slackNs: bigint = 0n, label = 'value'): void {
  if (value >= lo - slackNs && value <= hi + slackNs) return;
  const miss = value < lo ? `${ms(lo - value)} before` : `${ms(value - hi)} after`;
  throw new Error(
    `${label} ${value} is ${miss} the window [${lo}, ${hi}] (width ${ms(hi - lo)}, slack ${ms(slackNs)})`,
  );
}

/** Our clock before, the victim's reading of `key`, our clock after. */
export async function sampleClock(
  v: Victim,
  key: string,
): Promise<{ before: bigint; value: bigint; after: bigint }> {
  const before = realNowNs();
  const r = await v.now();
  const after = realNowNs();
  const value = r[key];
  if (value === undefined) {
    throw new Error(`${v.kind} victim has no reading ${JSON.stringify(key)}; it has ${Object.keys(r).join(', ')}`);
  }
  return { before, value, after };
}
