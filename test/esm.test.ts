// Both entry points of the package, as Node resolves them through package.json "exports": import
// gets esm/index.mjs, require gets dist/index.js, and they are the same objects (one copy of the
// library and of the addon). Needs no privileges: no process is skewed here (test/packaging does).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { REPO, ensureBuilt } from './support/cli';

beforeAll(() => ensureBuilt());

/** Runs an ES module snippet in a fresh node, from the repository root, and parses its JSON output. */
function esm(source: string): Record<string, unknown> {
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', source], { cwd: REPO, encoding: 'utf8' }));
}

describe('package entry points', () => {
  it('package.json maps import to esm/, require to dist/, each with its types', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    expect(pkg.exports['.']).toEqual({
      import: { types: './esm/index.d.mts', default: './esm/index.mjs' },
      require: { types: './dist/index.d.ts', default: './dist/index.js' },
    });
    expect(pkg.main).toBe('dist/index.js');
    expect(pkg.types).toBe('dist/index.d.ts');
    expect(pkg.files).toEqual(expect.arrayContaining(['dist/', 'esm/', 'prebuilds/']));
  });

  it('import by package name: every CommonJS export is there, as the very same object', () => {
    // Self-reference through "exports": `import 'timeskew'` from inside the package resolves esm/index.mjs.
    const out = esm(`
      import * as ns from 'timeskew';
      import def from 'timeskew';
      import { createRequire } from 'node:module';
      const cjs = createRequire(process.cwd() + '/')('timeskew');
      const names = Object.keys(cjs).sort();
      console.log(JSON.stringify({
        names,
        missing: names.filter((n) => !(n in ns)),
        different: names.filter((n) => ns[n] !== cjs[n]),
        defaultIsCjs: def === cjs,
        resolved: import.meta.resolve('timeskew'),
      }));
    `);
    expect(out.names).toEqual(expect.arrayContaining(['skewClock', 'restoreClock', 'inspectClock', 'SkewHandle', 'TimeSkewError', 'CLOCK_IDS', 'parseDuration', 'formatDuration']));
    expect(out.missing).toEqual([]);
    expect(out.different).toEqual([]);
    expect(out.defaultIsCjs).toBe(true);
    expect(out.resolved).toBe(`file://${path.join(REPO, 'esm', 'index.mjs')}`);
  });

  it('require by package name resolves dist/index.js', () => {
    const resolved = execFileSync(process.execPath, ['-p', "require.resolve('timeskew')"], { cwd: REPO, encoding: 'utf8' }).trim();
    expect(resolved).toBe(path.join(REPO, 'dist', 'index.js'));
  });

  it('an ESM caller gets TimeSkewError rejections it can branch on', () => {
    const out = esm(`
      import { skewClock, TimeSkewError } from 'timeskew';
      const err = await skewClock(0, { offset: '1s' }).catch((e) => e);
      console.log(JSON.stringify({ isError: err instanceof TimeSkewError, code: err.code }));
    `);
    expect(out).toEqual({ isError: true, code: 'EINVAL' });
  });
});
