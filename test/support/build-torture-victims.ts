// Compiles the torture suite's own C programs (the launcher, the torture victim, the blocker)
// once per run, from vitest's globalSetup (vitest.torture.config.mts), next to the common victims
// that test/support/global-setup.ts builds. Same rules as build-victims.ts: only when the source
// is newer, through a temporary name, with -Wall -Wextra -Werror so a warning is a failure here.
import { execFile } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const victimsDir = resolve(__dirname, '..', 'victims');
const binDir = join(victimsDir, 'bin');

export const tortureVictimPaths = {
  /** Double-fork stand-in: keeps the victim out of the test process's children (see launcher.c). */
  launcher: join(binDir, 'launcher'),
  torture: join(binDir, 'victim-torture'),
  blocker: join(binDir, 'blocker'),
} as const;

const sources: Array<[string, string]> = [
  [join(victimsDir, 'launcher.c'), tortureVictimPaths.launcher],
  [join(victimsDir, 'torture.c'), tortureVictimPaths.torture],
  [join(victimsDir, 'blocker.c'), tortureVictimPaths.blocker],
];

async function mtimeMs(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

function compile(source: string, output: string): Promise<void> {
  const cc = process.env.CC || 'cc';
  const args = ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-o', output, source];
  return new Promise((resolvePromise, reject) => {
    execFile(cc, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolvePromise();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new Error(`building the torture victims needs \`${cc}\` on PATH (Debian: gcc, libc6-dev)`));
      }
      reject(new Error(`building a torture victim failed: ${cc} ${args.join(' ')}\n${`${stdout}${stderr}`.trim()}`));
    });
  });
}

export async function buildTortureVictims(): Promise<void> {
  await mkdir(binDir, { recursive: true });
  await Promise.all(
    sources.map(async ([source, output]) => {
      const src = await mtimeMs(source);
      if (src === undefined) throw new Error(`torture victim source missing: ${source}`);
      const bin = await mtimeMs(output);
      if (bin !== undefined && bin >= src) return;
      const tmp = `${output}.tmp-${process.pid}`;
      try {
        await compile(source, tmp);
        await rename(tmp, output);
      } finally {
        await rm(tmp, { force: true });
      }
    }),
  );
}

/** vitest globalSetup entry. */
export default async function setup(): Promise<void> {
  await buildTortureVictims();
}
