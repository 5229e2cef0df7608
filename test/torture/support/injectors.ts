// Client side of test/torture/support/injector.js: separate Node processes that run one engine
// operation per request, so that a test can SIGKILL an injector in the middle of one, or make two
// of them race on the same target.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { LineQueue } from './detached';

export const INJECTOR_SCRIPT = path.join(__dirname, 'injector.js');
const SCRIPT = INJECTOR_SCRIPT;

export type Op = 'install' | 'update' | 'restore' | 'inspect';

export interface OpResult {
  /** CLOCK_MONOTONIC ns just before the operation started, if the injector got that far. */
  t0?: bigint;
  /** CLOCK_MONOTONIC ns just after it settled, if it did. */
  t1?: bigint;
  ok?: boolean;
  /** Error code when !ok. */
  code?: string;
  message?: string;
  hint?: string;
  errno?: number;
  syscall?: string;
  json?: string;
}

export interface Injector {
  pid: number;
  child: ChildProcess;
  lines: LineQueue;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a request without waiting. */
  send(op: Op, target: number, offsetNs?: bigint, replace?: boolean, delayUs?: number): void;
  /** Sends a request and waits for its t0/t1 lines. */
  run(op: Op, target: number, offsetNs?: bigint, replace?: boolean, delayUs?: number): Promise<OpResult>;
  /** Reads the t0/t1 lines of one request from whatever arrived (after a kill). */
  collect(): OpResult;
  kill(): Promise<void>;
}

const live = new Set<Injector>();

export async function killAllInjectors(): Promise<void> {
  await Promise.all([...live].map((i) => i.kill()));
}

export function parseOpLines(lines: string[]): OpResult {
  const result: OpResult = {};
  for (const line of lines) {
    const t0 = /^t0 (\d+)$/.exec(line);
    if (t0) result.t0 = BigInt(t0[1]);
    const t1 = /^t1 (\d+) (ok|err) (\S+)(?: (.*))?$/.exec(line);
    if (t1) {
      result.t1 = BigInt(t1[1]);
      result.ok = t1[2] === 'ok';
      if (result.ok) result.json = t1[3] + (t1[4] ? ` ${t1[4]}` : '');
      else {
        result.code = t1[3];
        const details = (t1[4] ? JSON.parse(t1[4]) : {}) as { message?: string; hint?: string; errno?: number; syscall?: string };
        result.message = details.message ?? '';
        result.hint = details.hint;
        result.errno = details.errno;
        result.syscall = details.syscall;
      }
    }
  }
  return result;
}

export interface InjectorOptions {
  /** Run this command line instead of `node injector.js` (e.g. under strace). */
  command?: [string, string[]];
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
}

export async function startInjector(opts: InjectorOptions = {}): Promise<Injector> {
  const [cmd, args] = opts.command ?? [process.execPath, [SCRIPT]];
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, uid: opts.uid, gid: opts.gid });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4096)));
  child.stdin!.on('error', () => {});
  const lines = new LineQueue(child.stdout!, () => `injector (pid ${child.pid})${stderr ? `; stderr: ${stderr}` : ''}`);
  // 'close', not 'exit': it comes after stdout has ended, so every line the injector wrote before
  // it died is in `lines` by then.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const line = (op: Op, target: number, offsetNs = 0n, replace = false, delayUs = 0) =>
    `${op} ${target} ${offsetNs} ${replace ? 1 : 0} ${Math.round(delayUs)}\n`;
  const injector: Injector = {
    pid: child.pid ?? -1,
    child,
    lines,
    exited,
    send(op, target, offsetNs, replace, delayUs) {
      child.stdin!.write(line(op, target, offsetNs, replace, delayUs));
    },
    async run(op, target, offsetNs, replace, delayUs) {
      injector.send(op, target, offsetNs, replace, delayUs);
      const first = await lines.next(60_000);
      const second = await lines.next(60_000);
      return parseOpLines([first, second]);
    },
    collect: () => parseOpLines(lines.drain()),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      live.delete(injector);
    },
  };
  live.add(injector);
  const ready = await lines.next(30_000);
  const readyPid = /^ready (\d+)$/.exec(ready);
  // Under a wrapper (strace) the injector's pid is not the spawned one: take it from its line.
  if (readyPid) injector.pid = Number(readyPid[1]);
  if (!readyPid || (!opts.command && injector.pid !== child.pid)) {
    await injector.kill();
    throw new Error(`injector did not start: ${JSON.stringify(ready)}; stderr: ${stderr}`);
  }
  return injector;
}
