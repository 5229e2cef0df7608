'use strict';
// Run by test/unprivileged.test.ts as uid/gid 65534 (nobody), from a temporary copy next to
// timeskew.node and victim-c (the repository itself may be unreadable for nobody). It skews its own
// child through the raw addon, then tries pid 1, and prints ONE JSON line with everything it saw
// (bigints as strings). Every step has a deadline so that a hang becomes a report, not a stuck test.
// Plain CommonJS, no dependencies: it runs with the bare node binary.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const STEP_TIMEOUT_MS = 20_000;
const binding = require(path.join(__dirname, 'timeskew.node'));
const offsetsNs = new Array(12).fill(0n);
offsetsNs[0] = -600n * 10n ** 9n;

const report = {
  uid: process.getuid(),
  gid: process.getgid(),
  euid: process.geteuid(),
  egid: process.getegid(),
  groups: process.getgroups(),
  pid: process.pid,
  steps: [],
};

const nowNs = () => (BigInt(Date.now()) * 1000000n).toString();
const stringify = (value) => JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
const errorInfo = (err) => ({ code: err && err.code, message: err && err.message, errno: err && err.errno });

function withTimeout(promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function statusIds(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => text.match(new RegExp(`^${name}:\\s+(.*)$`, 'm'))[1].trim().split(/\s+/).map(Number);
  return { uid: field('Uid'), gid: field('Gid'), ppid: field('PPid')[0] };
}

async function main() {
  const victim = spawn(path.join(__dirname, 'victim-c'), [], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiters = [];
  let partial = '';
  victim.stdout.setEncoding('utf8').on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    for (const line of parts) (waiters.length ? waiters.shift() : lines.push.bind(lines))(line);
  });
  const nextLine = (what) =>
    withTimeout(new Promise((resolve) => (lines.length ? resolve(lines.shift()) : waiters.push(resolve))), what);
  const exited = new Promise((resolve) => victim.once('exit', (code, signal) => resolve({ code, signal })));
  const readNow = async (what) => {
    const before = nowNs();
    victim.stdin.write('now\n');
    const line = await nextLine(what);
    const after = nowNs();
    return { before, line, after };
  };

  try {
    report.victimPid = victim.pid;
    report.ready = await nextLine('ready');
    report.victimIds = statusIds(victim.pid);

    report.steps.push('install');
    report.install = await withTimeout(
      binding.install({ pid: victim.pid, mask: 1, offsetsNs, replace: false, forceSyscall: false }),
      'install',
    );
    report.skewed = await readNow('now (skewed)');
    report.inspect = await withTimeout(binding.inspect(victim.pid), 'inspect');

    report.steps.push('restore');
    report.restore = await withTimeout(binding.restore(victim.pid), 'restore');
    report.restored = await readNow('now (restored)');
    report.inspectAfter = await withTimeout(binding.inspect(victim.pid), 'inspect after restore');

    report.steps.push('pid 1');
    report.pid1Ids = statusIds(1);
    try {
      await withTimeout(binding.install({ pid: 1, mask: 1, offsetsNs, replace: false, forceSyscall: false }), 'pid 1');
      report.pid1 = { installed: true };
      // Should never happen; do not leave init skewed if it did.
      await binding.restore(1).catch(() => undefined);
    } catch (err) {
      report.pid1 = errorInfo(err);
    }

    report.steps.push('exit');
    victim.stdin.write('exit 9\n');
    report.victimExit = await withTimeout(exited, 'victim exit');
  } catch (err) {
    report.error = errorInfo(err);
    victim.kill('SIGKILL');
  }
  process.stdout.write(stringify(report) + '\n');
  process.exit(0);
}

main();
