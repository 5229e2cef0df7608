// Compiles the native victims (C and Go) once per test run, from vitest's
// globalSetup. The script victims (Python, Node) need no build but their paths
// live here too so every test finds all victims in one place.
import { execFile } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const victimsDir = resolve(__dirname, '..', 'victims');
const binDir = join(victimsDir, 'bin');

export const victimPaths = {
  dir: victimsDir,
  bin: binDir,
  cSource: join(victimsDir, 'victim.c'),
  goSource: join(victimsDir, 'victim.go'),
  c: join(binDir, 'victim-c'),
  modelSource: join(victimsDir, 'model-victim.c'),
  model: join(binDir, 'model-victim'),
  go: join(binDir, 'victim-go'),
  python: join(victimsDir, 'victim.py'),
  node: join(victimsDir, 'victim.js'),
} as const;

async function mtimeMs(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, args, { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolvePromise();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new Error(`building a test victim needs \`${cmd}\` on PATH (Debian: gcc, golang-go)`));
      }
      const output = `${stdout}${stderr}`.trim();
      reject(new Error(`building a test victim failed: ${cmd} ${args.join(' ')}\n${output || err.message}`));
    });
  });
}

// Builds into a temporary name and renames, so an interrupted build never
// leaves a truncated binary that looks newer than its source.
async function buildIfStale(
  source: string,
  output: string,
  build: (tmpOutput: string) => Promise<void>,
): Promise<void> {
  const src = await mtimeMs(source);
  if (src === undefined) throw new Error(`victim source missing: ${source}`);
  const bin = await mtimeMs(output);
  if (bin !== undefined && bin >= src) return;
  const tmp = `${output}.tmp-${process.pid}`;
  try {
    await build(tmp);
    await rename(tmp, output);
  } finally {
    await rm(tmp, { force: true });
  }
}

// `go build` refuses to run without a writable build cache, which it derives
// from HOME or XDG_CACHE_HOME; CI may have neither (or a read-only one), so
// unless GOCACHE is given, use one under the temp dir.
// A lone std-only file builds without a go.mod; nothing is downloaded.
// CGO_ENABLED=0 keeps glibc out: the Go runtime then calls the vDSO itself.
function goEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CGO_ENABLED: '0' };
  env.GOCACHE ||= join(tmpdir(), 'timeskew-go-cache');
  return env;
}

export async function buildVictims(): Promise<void> {
  await mkdir(binDir, { recursive: true });
  await Promise.all([
    buildIfStale(victimPaths.cSource, victimPaths.c, (out) =>
      run(process.env.CC || 'cc', ['-O2', '-pthread', '-Wall', '-Wextra', '-o', out, victimPaths.cSource], process.env),
    ),
    buildIfStale(victimPaths.modelSource, victimPaths.model, (out) =>
      run(process.env.CC || 'cc', ['-O2', '-Wall', '-Wextra', '-o', out, victimPaths.modelSource], process.env),
    ),
    buildIfStale(victimPaths.goSource, victimPaths.go, (out) =>
      run(process.env.GO || 'go', ['build', '-o', out, victimPaths.goSource], goEnv()),
    ),
  ]);
}
