// Runs the compiled CLI (dist/cli.js, the package's `bin`) as a real child process, the way a user
// or a script would. dist/ is rebuilt first when any lib/ source is newer than it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const REPO = path.resolve(__dirname, '..', '..');
export const CLI = path.join(REPO, 'dist', 'cli.js');

/** Compiles lib/ to dist/ unless dist/ is already at least as new as every source. */
export function ensureBuilt(): void {
  const newest = Math.max(
    ...['lib', 'types'].flatMap((dir) =>
      readdirSync(path.join(REPO, dir))
        .filter((f) => f.endsWith('.ts'))
        .map((f) => statSync(path.join(REPO, dir, f)).mtimeMs),
    ),
  );
  let built = 0;
  try {
    built = statSync(CLI).mtimeMs;
  } catch {
    // not built yet
  }
  if (built >= newest) return;
  execFileSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(REPO, 'tsconfig.json')], {
    stdio: 'inherit',
  });
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON Lines (only when every line is JSON). */
  events: Array<Record<string, unknown>>;
}

export interface RunningCli {
  child: ChildProcess;
  /** Resolves with the first stdout line matching `pattern` (or rejects on exit/timeout). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  done: Promise<CliResult>;
}

function parseEvents(stdout: string): Array<Record<string, unknown>> {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  try {
    return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch {
    return [];
  }
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, options: { uid?: number; gid?: number; cli?: string } = {}): RunningCli {
  const child = spawn(process.execPath, [options.cli ?? CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: options.uid,
    gid: options.gid,
  });
  let stdout = '';
  let stderr = '';
  const watchers: Array<{ pattern: RegExp; resolve(line: string): void }> = [];
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    stdout += chunk;
    for (const w of [...watchers]) {
      const line = stdout.split('\n').find((l) => w.pattern.test(l));
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr, events: parseEvents(stdout) }));
  });
  const waitFor = (pattern: RegExp, timeoutMs = 30_000): Promise<string> => {
    const line = stdout.split('\n').find((l) => pattern.test(l));
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`)), timeoutMs);
      watchers.push({
        pattern,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
      void done.then((r) => {
        clearTimeout(timer);
        reject(new Error(`the CLI exited (code ${r.code}, signal ${r.signal}) before printing a line matching ${pattern}; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`));
      });
    });
  };
  return { child, waitFor, done };
}

/** Runs the CLI to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, options: { uid?: number; gid?: number; cli?: string } = {}): Promise<CliResult> {
  return startCli(args, env, options).done;
}
