// `npm run demo`: skews the clock of one real child process and shows that its sibling, running the
// very same program, keeps the exact time. Needs the built addon and ptrace rights (root is simplest).

import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { type ClockStatus, type SkewHandle, TimeSkewError, formatDuration, inspectClock, skewClock } from './index';

// The program both children run: one clock reading per line of input.
const CLOCK_PROGRAM = [
  "const rl = require('readline').createInterface({ input: process.stdin });",
  "rl.on('line', () => console.log(new Date().toISOString() + ' ' + Date.now()));",
].join('\n');

const REPLY_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 5_000;
/** How far a measured difference may stray from the expected offset (both children are asked at once). */
const TOLERANCE_MS = 1_000;
const MS = 1_000_000n;

interface Reading {
  iso: string;
  ms: number;
}

/** A child running CLOCK_PROGRAM, with its stdout turned into a queue of lines. */
class ClockChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly #lines: string[] = [];
  readonly #waiters: Array<(line: string | undefined) => void> = [];
  #closed = false;
  readonly #exited: Promise<number | null>;

  constructor(readonly name: string) {
    this.child = spawn(process.execPath, ['-e', CLOCK_PROGRAM], { stdio: ['pipe', 'pipe', 'inherit'] });
    if (this.child.pid === undefined) throw new Error(`could not start the ${name} process`);
    this.pid = this.child.pid;
    this.#exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    const lines = createInterface({ input: this.child.stdout! });
    lines.on('line', (line) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(line);
      else this.#lines.push(line);
    });
    lines.on('close', () => {
      this.#closed = true;
      for (const waiter of this.#waiters.splice(0)) waiter(undefined);
    });
  }

  async read(): Promise<Reading> {
    this.child.stdin!.write('\n');
    const line = await this.#nextLine();
    const match = /^(\S+) (\d+)$/.exec(line);
    if (!match) throw new Error(`${this.name} (pid ${this.pid}) replied ${JSON.stringify(line)}`);
    return { iso: match[1], ms: Number(match[2]) };
  }

  /** Ends stdin, which lets the program finish on its own; SIGKILL if it does not. */
  async close(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
      try {
        return await this.#exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.#exited;
  }

  #nextLine(): Promise<string> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closed) return Promise.reject(new Error(`${this.name} (pid ${this.pid}) closed its output`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(deliver);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`${this.name} (pid ${this.pid}) did not answer within ${REPLY_TIMEOUT_MS} ms`));
      }, REPLY_TIMEOUT_MS);
      const deliver = (line: string | undefined): void => {
        clearTimeout(timer);
        if (line === undefined) reject(new Error(`${this.name} (pid ${this.pid}) closed its output`));
        else resolve(line);
      };
      this.#waiters.push(deliver);
    });
  }
}

const COLUMNS = [18, 26, 26, 13, 11] as const;
const row = (cells: string[]): string => cells.map((c, i) => c.padEnd(COLUMNS[i] ?? 0)).join('  ').trimEnd();
const msToDuration = (ms: number): string => formatDuration(BigInt(Math.round(ms)) * MS);
const nsToMs = (ns: bigint): number => Number(ns / MS);

function describeStatus(status: ClockStatus | null): string[] {
  if (status === null) return ['no skew installed'];
  const installer = status.installerPid === process.pid ? 'this demo' : `pid ${status.installerPid}`;
  const clocks = Object.entries(status.clocks).map(([name, ns]) => `${name} ${formatDuration(ns!)}`);
  const modes = Object.entries(status.mode).map(([fn, mode]) => `${fn}=${mode}`);
  return [
    `timeskew ${status.version}, installed by ${installer}, ${status.active ? 'active' : 'inactive'}; ${clocks.join(', ') || 'no clocks'}`,
    `${modes.join(' ')}`,
  ];
}

async function main(): Promise<number> {
  const skewed = new ClockChild('skewed child');
  const sibling = new ClockChild('sibling');
  let handle: SkewHandle | undefined;
  let mismatches = 0;

  const note = (text: string): void => console.log(`${''.padEnd(COLUMNS[0])}  ${text}`);
  const show = async (phase: string, expectedMs: number): Promise<void> => {
    // Both asked at once, so the difference is the skew plus well under a millisecond of noise.
    const [a, b] = await Promise.all([skewed.read(), sibling.read()]);
    const diff = a.ms - b.ms;
    const ok = Math.abs(diff - expectedMs) <= TOLERANCE_MS;
    if (!ok) mismatches++;
    console.log(row([phase, a.iso, b.iso, msToDuration(diff), `${msToDuration(expectedMs)} ${ok ? 'ok' : 'WRONG'}`]));
  };

  try {
    console.log(`timeskew demo: two copies of one Node program, pids ${skewed.pid} and ${sibling.pid}.`);
    console.log(`Only pid ${skewed.pid} gets skewed; pid ${sibling.pid} shows the real time.\n`);
    console.log(row(['step', `skewed child (${skewed.pid})`, `sibling (${sibling.pid})`, 'difference', 'expected']));
    console.log(row(COLUMNS.map((width) => '-'.repeat(width))));

    // One unshown round first, so that both programs are up and warm before anything is measured.
    await Promise.all([skewed.read(), sibling.read()]);
    await show('before', 0);

    handle = await skewClock(skewed.pid, { offset: '-10m' });
    const installed = handle.lastReport;
    note(
      `skewClock(${skewed.pid}, { offset: '-10m' }): ${installed.threads} threads stopped for ` +
        `${(installed.pauseNs / 1e6).toFixed(2)} ms`,
    );
    await show("offset '-10m'", nsToMs(handle.offsetNs));
    const [status, modes] = describeStatus(await inspectClock(skewed.pid));
    note(`inspectClock(${skewed.pid}): ${status}`);
    note(`  ${modes}`);

    await handle.update({ offset: '72h' });
    note(`handle.update({ offset: '72h' }): offset rewritten in place, target not stopped`);
    await show("offset '72h'", nsToMs(handle.offsetNs));

    await handle.restore();
    note(`handle.restore(): ${describeStatus(await inspectClock(skewed.pid))[0]}`);
    await show('after restore', 0);
  } catch (err) {
    if (!(err instanceof TimeSkewError)) throw err;
    // The message carries the code, the pid and the hint.
    console.error(`\nskewing failed: ${err.message}`);
    return 1;
  } finally {
    if (handle && !handle.restored) await handle.restore().catch(() => undefined);
    const codes = await Promise.all([skewed.close(), sibling.close()]);
    if (codes.some((code) => code !== 0)) {
      console.error(`\na child did not exit cleanly (exit codes ${codes.join(', ')})`);
      mismatches++;
    }
  }

  if (mismatches > 0) {
    console.error(`\n${mismatches} check(s) did not match the expected result`);
    return 1;
  }
  console.log(`\nBoth children exited with code 0. The sibling's clock was never touched.`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
