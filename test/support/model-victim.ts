// Client of test/victims/model-victim.c: a victim that measures its own clock against raw system
// calls (which timeskew never fakes), so rates, freezes and jumps are judged from inside the target.
// Lines starting with "report " come from reporter children sharing its stdout and are collected
// apart from the replies.
import { type ChildProcess, spawn } from 'node:child_process';
import { victimPaths } from './build-victims';

/** One vDSO reading `v` with the raw readings of the same clock just before (`a`) and after (`b`). */
export interface Bracket {
  v: bigint;
  a: bigint;
  b: bigint;
}

export interface Report extends Bracket {
  pid: number;
  gen: number;
}

export interface ModelVictim {
  pid: number;
  child: ChildProcess;
  request(line: string, timeoutMs?: number): Promise<string>;
  read(clock: string): Promise<Bracket>;
  /** Two narrow brackets `ms` apart (real time). */
  measure(clock: string, ms: number): Promise<{ start: Bracket; end: Bracket }>;
  monotonicCheck(clock: string, ms: number): Promise<{ reads: bigint; backwards: bigint; maxback: bigint; maxbackRaw: bigint; first: bigint; last: bigint }>;
  freezeCheck(clock: string, n: number, us: number): Promise<{ reads: bigint; min: bigint; max: bigint; rawspan: bigint }>;
  /** Skew (vDSO - raw midpoint) of `n` readings `us` apart. */
  sample(clock: string, n: number, us: number): Promise<bigint[]>;
  /** Starts a reporter child (reports CLOCK_REALTIME every `ms`); resolves with its pid. */
  spawnReporter(ms: number): Promise<number>;
  /** The same, forked without exec: the child inherits the victim's skew. */
  forkReporter(ms: number): Promise<number>;
  /** Re-executes itself (same pid): drops any skew. */
  exec(): Promise<void>;
  /** Resolves with the first report from `pid` received after this call that satisfies `accept`. */
  nextReport(pid: number, accept?: (r: Report) => boolean, timeoutMs?: number): Promise<Report>;
  close(): Promise<void>;
}

const LINE_TIMEOUT_MS = 30_000;
const live = new Set<ModelVictim>();

export async function closeAllModelVictims(): Promise<void> {
  await Promise.all([...live].map((v) => v.close()));
}

function parseFields(line: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const token of line.trim().split(/\s+/)) {
    const m = /^([a-z_0-9]+)=(-?\d+)$/.exec(token);
    if (!m) throw new Error(`not a key=value line: ${JSON.stringify(line)}`);
    out[m[1]!] = BigInt(m[2]!);
  }
  return out;
}

export function midpoint(r: Bracket): bigint {
  return r.a + (r.b - r.a) / 2n;
}

/** The skew of one reading: fake minus the real time at the middle of its bracket. */
export function skewOf(r: Bracket): bigint {
  return r.v - midpoint(r);
}

export interface RateMeasurement {
  /** (v1 - v0) / (mid1 - mid0). */
  rate: number;
  /** Real time between the two readings, ns. */
  realNs: bigint;
  /** Largest error the bracket widths allow in `rate`, in ppm. */
  boundPpm: number;
}

export function rateOf({ start, end }: { start: Bracket; end: Bracket }, expectedRate: number, quantumNs = 1n): RateMeasurement {
  const realNs = midpoint(end) - midpoint(start);
  const fakeNs = end.v - start.v;
  // Each reading happened somewhere in its bracket: the fake clock may be off the midpoint by
  // rate * width / 2; a reading is also truncated to its unit (1 ns, or 1 µs for gettimeofday).
  const slack = (expectedRate * Number(end.b - end.a + (start.b - start.a))) / 2 + Number(quantumNs) * 2;
  return { rate: Number(fakeNs) / Number(realNs), realNs, boundPpm: (slack / Number(realNs)) * 1e6 };
}

export async function spawnModelVictim(): Promise<ModelVictim> {
  const child = spawn(victimPaths.model, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<{ resolve(line: string): void; reject(err: Error): void; timer: NodeJS.Timeout }> = [];
  const reportWaiters = new Set<{ pid: number; accept(r: Report): boolean; resolve(r: Report): void }>();
  let partial = '';
  let stderr = '';
  let ended: Error | undefined;
  let exited = false;

  const deliver = (line: string): void => {
    if (line.startsWith('report ')) {
      const f = parseFields(line.slice('report '.length));
      const report: Report = { pid: Number(f.pid), gen: Number(f.gen), v: f.v!, a: f.a!, b: f.b! };
      for (const w of [...reportWaiters]) {
        if (w.pid === report.pid && w.accept(report)) {
          reportWaiters.delete(w);
          w.resolve(report);
        }
      }
      return;
    }
    const w = waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(line);
    } else lines.push(line);
  };

  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) deliver(p);
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4096)));
  child.stdin!.on('error', () => {});
  let resolveExit!: () => void;
  const exitPromise = new Promise<void>((r) => (resolveExit = r));
  child.once('exit', (code, signal) => {
    exited = true;
    ended = new Error(`model victim ${child.pid} exited (code ${code}, signal ${signal}); stderr: ${stderr.trim()}`);
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(ended);
    }
    resolveExit();
  });

  const nextLine = (timeoutMs = LINE_TIMEOUT_MS): Promise<string> => {
    const queued = lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (ended) return Promise.reject(ended);
    return new Promise((resolve, reject) => {
      const w = {
        resolve,
        reject,
        timer: setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`model victim ${child.pid}: no reply within ${timeoutMs} ms; stderr: ${stderr.trim()}`));
        }, timeoutMs),
      };
      waiters.push(w);
    });
  };
  const request = (line: string, timeoutMs?: number): Promise<string> => {
    const reply = nextLine(timeoutMs);
    child.stdin!.write(line + '\n');
    return reply;
  };
  const fields = async (line: string): Promise<Record<string, bigint>> => {
    const reply = await request(line);
    if (reply.startsWith('error')) throw new Error(`model victim: ${line}: ${reply}`);
    return parseFields(reply);
  };
  const expectReady = async (): Promise<void> => {
    const ready = await nextLine();
    if (ready !== `ready ${child.pid}`) throw new Error(`model victim: expected "ready ${child.pid}", got ${JSON.stringify(ready)}`);
  };

  const victim: ModelVictim = {
    pid: child.pid!,
    child,
    request,
    async read(clock) {
      const f = await fields(`read ${clock}`);
      return { v: f.v!, a: f.a!, b: f.b! };
    },
    async measure(clock, ms) {
      const f = await fields(`measure ${clock} ${ms}`);
      return { start: { v: f.v0!, a: f.a0!, b: f.b0! }, end: { v: f.v1!, a: f.a1!, b: f.b1! } };
    },
    async monotonicCheck(clock, ms) {
      const f = await fields(`monotonic-check ${clock} ${ms}`);
      return { reads: f.reads!, backwards: f.backwards!, maxback: f.maxback!, maxbackRaw: f.maxback_raw!, first: f.first!, last: f.last! };
    },
    async freezeCheck(clock, n, us) {
      const f = await fields(`freeze-check ${clock} ${n} ${us}`);
      return { reads: f.reads!, min: f.min!, max: f.max!, rawspan: f.rawspan! };
    },
    async sample(clock, n, us) {
      const reply = await request(`sample ${clock} ${n} ${us}`);
      const m = /^skews=(.*)$/.exec(reply);
      if (!m) throw new Error(`model victim: sample: ${reply}`);
      return m[1]!.split(',').map((s) => BigInt(s));
    },
    async spawnReporter(ms) {
      const reply = await request(`spawn ${ms}`);
      const m = /^spawned (\d+)$/.exec(reply);
      if (!m) throw new Error(`model victim: spawn: ${reply}`);
      return Number(m[1]);
    },
    async forkReporter(ms) {
      const reply = await request(`fork-reporter ${ms}`);
      const m = /^spawned (\d+)$/.exec(reply);
      if (!m) throw new Error(`model victim: fork-reporter: ${reply}`);
      return Number(m[1]);
    },
    async exec() {
      child.stdin!.write('exec\n');
      await expectReady();
    },
    nextReport(pid, accept = () => true, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const w = {
          pid,
          accept,
          resolve: (r: Report) => {
            clearTimeout(timer);
            resolve(r);
          },
        };
        const timer = setTimeout(() => {
          reportWaiters.delete(w);
          reject(new Error(`no matching report from pid ${pid} within ${timeoutMs} ms`));
        }, timeoutMs);
        reportWaiters.add(w);
      });
    },
    async close() {
      live.delete(victim);
      if (!exited) {
        child.stdin!.write('exit 0\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exitPromise;
        clearTimeout(timer);
      }
      child.stdin!.destroy();
    },
  };
  live.add(victim);
  try {
    await expectReady();
  } catch (err) {
    await victim.close();
    throw err;
  }
  return victim;
}
