// The package as users get it: `npm run prebuilds`, `npm pack`, then `npm install <tarball>` into a
// fresh project whose PATH has node and npm and nothing else (no cc, c++, make or python), so the
// install can only succeed on the prebuilt addon. The installed package must load that prebuild
// (not a local build), skew a real process from require() and from import, run its CLI, and
// type-check from both module systems. Last, the node-gyp build as the fallback when no prebuild
// matches the machine.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, ensureBuilt } from './support/cli';

const isRoot = process.getuid?.() === 0;
const PACKAGE = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs ?? 240_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function mustRun(file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<string> {
  const r = await run(file, args, options);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.code}) in ${options.cwd}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The npm CLI's own script (npm is a node program, so `node npm-cli.js` runs it with our node). */
function npmCli(): string {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'),
    '/usr/lib/node_modules/npm/bin/npm-cli.js',
    '/usr/share/nodejs/npm/bin/npm-cli.js',
  ];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`npm-cli.js not found in ${candidates.join(', ')}`);
  return path.resolve(found);
}

/** A directory holding only `node`, `npm` and `sh` (npm runs install scripts with it): the PATH of a machine without a compiler. */
async function noCompilerPath(dir: string): Promise<string> {
  const bin = path.join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await symlink(process.execPath, path.join(bin, 'node'));
  await symlink(npmCli(), path.join(bin, 'npm'));
  await symlink('/bin/sh', path.join(bin, 'sh'));
  return bin;
}

/** Only what npm needs; nothing inherited from the npm/vitest process that runs this test. */
function cleanEnv(pathValue: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: pathValue, HOME: process.env.HOME ?? os.homedir(), ...extra };
  for (const key of ['TMPDIR', 'LANG', 'npm_config_cache', 'npm_config_registry']) if (process.env[key]) env[key] = process.env[key];
  return env;
}

const MUSL_PREBUILD = path.join(REPO, 'prebuilds', 'linux-x64', 'timeskew.musl.node');

/** Which shared libraries an ELF file needs, and which N-API functions it imports (objdump, from binutils). */
async function elfImports(file: string): Promise<{ needed: string[]; napi: string[]; glibcVersions: string[] }> {
  const headers = await mustRun('objdump', ['-p', file], { cwd: REPO });
  const symbols = await mustRun('objdump', ['-T', file], { cwd: REPO });
  return {
    needed: [...headers.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]),
    napi: [...new Set([...symbols.matchAll(/\*UND\*.*\s(napi_\w+)$/gm)].map((m) => m[1]))].sort(),
    glibcVersions: [...new Set([...symbols.matchAll(/\(GLIBC(?:XX)?_[\d.]+\)/g)].map((m) => m[0]))],
  };
}

const MUSL_LOADER = `
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) { printf("dlopen failed: %s\\n", dlerror()); return 1; }
  printf("loaded, napi_register_module_v1 %s\\n", dlsym(h, "napi_register_module_v1") ? "found" : "missing");
  return 0;
}
`;

const CONSUMER_CJS = `
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const timeskew = require('timeskew');
const pkgDir = path.dirname(require.resolve('timeskew/package.json'));
const addon = require(require.resolve('node-gyp-build', { paths: [pkgDir] })).path(pkgDir);
(async () => {
  const child = spawn(process.execPath, ['-e',
    "require('readline').createInterface({ input: process.stdin }).on('line', () => console.log(Date.now()))"],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const ask = () => new Promise((resolve) => { lines.once('line', (l) => resolve(Number(l))); child.stdin.write('\\n'); });
  await ask();
  const handle = await timeskew.skewClock(child.pid, { offset: '-1h' });
  const before = Date.now(); const skewed = await ask(); const after = Date.now();
  const status = await timeskew.inspectClock(child.pid);
  await handle.restore();
  const before2 = Date.now(); const restored = await ask(); const after2 = Date.now();
  child.stdin.end();
  console.log(JSON.stringify({
    addon, mode: handle.mode,
    skewedMs: skewed - (before + after) / 2, restoredMs: restored - (before2 + after2) / 2,
    offset: String(status.clocks.CLOCK_REALTIME),
  }));
})().catch((err) => { console.error(err); process.exit(1); });
`;

const CONSUMER_ESM = `
import * as ns from 'timeskew';
import timeskew, { skewClock, formatDuration } from 'timeskew';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('timeskew');
const names = Object.keys(cjs).sort();
console.log(JSON.stringify({
  names,
  missing: names.filter((name) => !(name in ns)),
  sameFunctions: skewClock === cjs.skewClock && timeskew === cjs,
  formatted: formatDuration(-3600000000000n),
  status: await ns.inspectClock(process.pid),
}));
`;

const TYPES_MTS = `
import { skewClock, formatDuration, TimeSkewError, type SkewHandle, type SkewOptions } from 'timeskew';
import timeskew from 'timeskew';
const options: SkewOptions = { offset: '-1h', clockIds: ['CLOCK_REALTIME'] };
export const handle: Promise<SkewHandle> = skewClock(1, options);
export const text: string = formatDuration(1n);
export const restored: Promise<boolean> = timeskew.restoreClock(1);
export const isError = (e: unknown): boolean => e instanceof TimeSkewError && e.code === 'EPERM';
`;

const TYPES_CTS = `
import timeskew = require('timeskew');
export const restored: Promise<boolean> = timeskew.restoreClock(1);
export const handle: Promise<timeskew.SkewHandle> = timeskew.skewClock(1, { sec: -600 });
`;

describe.runIf(isRoot)('the packed package', () => {
  let work: string;
  let tarball: string;
  let project: string;
  let bin: string;

  beforeAll(async () => {
    ensureBuilt();
    work = await mkdtemp(path.join(os.tmpdir(), 'timeskew-pack-'));
    // The prebuild (skipped when newer than the native sources), then the tarball. npm's own
    // scripts are not run: `prepare` would only recompile what ensureBuilt() just checked.
    await mustRun(process.execPath, [npmCli(), 'run', 'prebuilds', '--', '--if-stale', '--quiet'], { cwd: REPO, timeoutMs: 300_000 });
    const packed = JSON.parse(
      await mustRun(process.execPath, [npmCli(), 'pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: REPO }),
    ) as Array<{ filename: string }>;
    tarball = path.join(work, packed[0].filename);

    project = path.join(work, 'consumer');
    await mkdir(project);
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    bin = await noCompilerPath(work);
  }, 400_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the tarball holds the prebuild, both entry points with types, the CLI, and no local build', async () => {
    const files = (await mustRun('tar', ['-tzf', tarball], { cwd: work })).split('\n').filter(Boolean);
    expect(files).toEqual(
      expect.arrayContaining([
        'package/prebuilds/linux-x64/timeskew.glibc.node',
        'package/dist/index.js',
        'package/dist/index.d.ts',
        'package/dist/cli.js',
        'package/esm/index.mjs',
        'package/esm/index.d.mts',
        'package/binding.gyp',
        'package/native/addon.cc',
        'package/package.json',
      ]),
    );
    expect(files.filter((f) => /^package\/(build|test|node_modules|lib)\//.test(f))).toEqual([]);
    if (existsSync(MUSL_PREBUILD)) expect(files).toContain('package/prebuilds/linux-x64/timeskew.musl.node');
  });

  it('installs with no compiler on the PATH, loads the prebuild, and skews a process (require)', async () => {
    for (const tool of ['cc', 'gcc', 'c++', 'g++', 'make', 'python3', 'python']) {
      expect((await run('/bin/sh', ['-c', `command -v ${tool}`], { cwd: project, env: { PATH: bin } })).code, tool).not.toBe(0);
    }
    await mustRun(path.join(bin, 'npm'), ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], {
      cwd: project,
      env: cleanEnv(bin),
    });
    const installed = path.join(project, 'node_modules', PACKAGE.name);
    expect(existsSync(path.join(installed, 'build'))).toBe(false); // nothing was compiled
    expect(readdirSync(path.join(installed, 'prebuilds', 'linux-x64'))).toContain('timeskew.glibc.node');

    await writeFile(path.join(project, 'consumer.cjs'), CONSUMER_CJS);
    const out = JSON.parse(await mustRun(path.join(bin, 'node'), ['consumer.cjs'], { cwd: project, env: cleanEnv(bin) }));
    expect(out.addon).toBe(path.join(installed, 'prebuilds', 'linux-x64', 'timeskew.glibc.node'));
    expect(out.offset).toBe(String(-3_600_000_000_000n));
    expect(Math.abs(out.skewedMs + 3_600_000)).toBeLessThan(1_000);
    expect(Math.abs(out.restoredMs)).toBeLessThan(1_000);
  });

  it('import works too: the same exports, the same objects as require()', async () => {
    await writeFile(path.join(project, 'consumer.mjs'), CONSUMER_ESM);
    const out = JSON.parse(await mustRun(path.join(bin, 'node'), ['consumer.mjs'], { cwd: project, env: cleanEnv(bin) }));
    expect(out.names).toEqual(expect.arrayContaining(['skewClock', 'restoreClock', 'inspectClock', 'SkewHandle', 'TimeSkewError', 'CLOCK_IDS', 'parseDuration', 'formatDuration']));
    expect(out.missing).toEqual([]);
    expect(out.sameFunctions).toBe(true);
    expect(out.formatted).toBe('-1h0m0s');
    expect(out.status).toBeNull();
  });

  it('the types resolve for import (.mts) and require (.cts) under moduleResolution nodenext', async () => {
    await writeFile(path.join(project, 'types.mts'), TYPES_MTS);
    await writeFile(path.join(project, 'types.cts'), TYPES_CTS);
    await writeFile(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true,
          lib: ['es2022', 'esnext.disposable'], types: [], typeRoots: [path.join(REPO, 'node_modules', '@types')], skipLibCheck: true,
        },
        files: ['types.mts', 'types.cts'],
      }),
    );
    await mustRun(path.join(bin, 'node'), [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: project, env: cleanEnv(bin) });
  });

  it('the installed CLI runs on the prebuild', async () => {
    const timeskew = path.join(project, 'node_modules', '.bin', 'timeskew');
    expect((await mustRun(timeskew, ['--version'], { cwd: project, env: cleanEnv(bin) })).trim()).toBe(PACKAGE.version);
    const status = await run(timeskew, ['status', String(process.pid), '--json'], { cwd: project, env: cleanEnv(bin) });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toEqual({ event: 'status', pid: process.pid, skewed: false });
  });


  it('falls back to a node-gyp build when no prebuild matches (here: a musl machine is pretended)', async () => {
    const fallback = path.join(work, 'fallback');
    await mkdir(fallback);
    await writeFile(path.join(fallback, 'package.json'), JSON.stringify({ name: 'fallback', version: '1.0.0', private: true }));
    // node-gyp-build reads LIBC to choose a prebuild; no musl prebuild can load on this glibc
    // machine, so its install script builds from source with the compiler on the normal PATH.
    await mustRun(path.join(bin, 'npm'), ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts'], {
      cwd: fallback,
      env: cleanEnv(process.env.PATH ?? '', { LIBC: 'musl', JOBS: '2', ...(process.env.npm_config_nodedir ? { npm_config_nodedir: process.env.npm_config_nodedir } : {}) }),
      timeoutMs: 400_000,
    });
    const installed = path.join(fallback, 'node_modules', PACKAGE.name);
    expect(existsSync(path.join(installed, 'build', 'Release', 'timeskew.node'))).toBe(true);
    await writeFile(path.join(fallback, 'consumer.cjs'), CONSUMER_CJS);
    const out = JSON.parse(await mustRun(process.execPath, ['consumer.cjs'], { cwd: fallback, env: cleanEnv(process.env.PATH ?? '', { LIBC: 'musl' }) }));
    expect(out.addon).toBe(path.join(installed, 'build', 'Release', 'timeskew.node'));
    expect(Math.abs(out.skewedMs + 3_600_000)).toBeLessThan(1_000);
  }, 400_000);
});
