// The examples under examples/ are real projects: each is installed with its own test runner from
// the registry (Jest 30, Vitest 4; timeskew itself is linked from this repository) and run the way
// a user runs it. Each has a global setup that starts a server and skews it, tests that observe the
// skew through the server's HTTP API, a teardown that restores it and checks the server is exact
// again, and a setup file that skews the test process itself.
//
// Installs are kept: an example whose node_modules is at least as new as its package.json is not
// installed again, so only the first run (or a changed package.json) needs the registry.
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO, ensureBuilt } from './support/cli';

const isRoot = process.getuid?.() === 0;
const NPM_TIMEOUT_MS = 600_000;
const RUN_TIMEOUT_MS = 180_000;

interface Run {
  code: number;
  output: string;
}

function run(file: string, args: string[], cwd: string, timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    // The examples must not inherit this vitest run's own settings (VITEST, NODE_ENV, pool ids).
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(VITEST|VITE_|TINYPOOL|JEST_)/.test(k) && k !== 'NODE_ENV'));
    execFile(file, args, { cwd, timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...clean, CI: 'true', NO_COLOR: '1', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}\n${stderr}` });
    });
  });
}

function npmCli(): string {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    '/usr/lib/node_modules/npm/bin/npm-cli.js',
  ];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error('npm-cli.js not found');
  return found;
}

async function install(dir: string, runnerBin: string): Promise<void> {
  const marker = path.join(dir, 'node_modules', '.package-lock.json');
  const bin = path.join(dir, 'node_modules', '.bin', runnerBin);
  if (existsSync(bin) && existsSync(marker) && statSync(marker).mtimeMs >= statSync(path.join(dir, 'package.json')).mtimeMs) return;
  // --ignore-scripts: timeskew is linked from this repository, whose addon and dist/ are already
  // built; its install script would only rebuild them. The runners need no install scripts.
  const r = await run(
    process.execPath,
    [npmCli(), 'install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', '--ignore-scripts'],
    dir,
    NPM_TIMEOUT_MS,
  );
  if (r.code !== 0) throw new Error(`npm install in ${dir} failed (${r.code}):\n${r.output}`);
}

const examples = [
  { name: 'jest', runnerBin: 'jest', args: ['--ci', '--verbose'] },
  { name: 'vitest', runnerBin: 'vitest', args: ['run', '--reporter=verbose'] },
] as const;

describe.runIf(isRoot)('examples', () => {
  beforeAll(() => ensureBuilt());

  for (const example of examples) {
    it(`examples/${example.name}: installs and passes`, async () => {
      const dir = path.join(REPO, 'examples', example.name);
      await install(dir, example.runnerBin);
      const r = await run(path.join(dir, 'node_modules', '.bin', example.runnerBin), [...example.args], dir, RUN_TIMEOUT_MS);
      expect(r.code, r.output).toBe(0);
      // Every test of both projects ran: the server's skew, the process's own, and the timers.
      const output = r.output.replace(/\x1b\[[0-9;]*m/g, '');
      for (const name of ['the server reports a time one hour in the past', 'Date.now() in this process is one hour behind the real time']) {
        expect(output).toContain(name);
      }
      expect(output).toMatch(example.name === 'jest' ? /Tests:\s+5 passed, 5 total/ : /Tests\s+5 passed \(5\)/);
    }, NPM_TIMEOUT_MS + RUN_TIMEOUT_MS);
  }
});
