'use strict';
// A separate injecting process for the torture suite: the one the random-kill case SIGKILLs in the
// middle of an operation, and the two that race each other in the concurrent-skewers case. It
// uses the raw addon, so what it does to the target is exactly one engine operation.
//
// stdin, one request per line:   <op> <pid> <offsetNs> <replace 0|1> <delayUs>
//   op: install | update | restore | inspect   (offset -> CLOCK_REALTIME only)
//   delayUs: busy-wait this long before starting (to vary the overlap of two racing injectors)
// stdout:
//   "ready <pid>" once the addon is loaded
//   "t0 <ns>" just before the operation starts, "t1 <ns> ok <json>" or
//   "t1 <ns> err <code> <json {message, hint, errno, syscall}>" just after it settled. <ns> is process.hrtime.bigint(), i.e. CLOCK_MONOTONIC, the same clock in
//   every process, so the test can place its kill relative to these instants.
// Writes go through fs.writeSync: a line is in the pipe before the next statement runs, so a line
// the test finds after the kill was written before it. Leaves when stdin closes.
// Plain CommonJS, run with the bare node binary. TIMESKEW_ADDON=<path of timeskew.node> loads that
// file instead of the repository's build (privilege.test.ts runs a staged copy as another user).
const fs = require('node:fs');
const path = require('node:path');

const binding = process.env.TIMESKEW_ADDON
  ? require(process.env.TIMESKEW_ADDON)
  : require('node-gyp-build')(path.resolve(__dirname, '..', '..', '..'));

const say = (line) => fs.writeSync(1, line + '\n');
const stringify = (value) => JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));

function table(offsetNs) {
  const offsetsNs = new Array(12).fill(0n);
  offsetsNs[0] = offsetNs;
  return { mask: 1, offsetsNs };
}

function start(op, pid, offsetNs, replace) {
  switch (op) {
    case 'install':
      return binding.install({ pid, ...table(offsetNs), replace, forceSyscall: false });
    case 'update':
      return binding.update(pid, table(offsetNs));
    case 'restore':
      return binding.restore(pid);
    case 'inspect':
      return binding.inspect(pid);
    default:
      return Promise.reject(Object.assign(new Error(`unknown op ${op}`), { code: 'EINVAL' }));
  }
}

let queue = Promise.resolve();

function handle(line) {
  const [op, pidText, offsetText = '0', replaceText = '0', delayText = '0'] = line.trim().split(/\s+/);
  const delayNs = BigInt(delayText) * 1000n;
  if (delayNs > 0n) {
    const until = process.hrtime.bigint() + delayNs;
    while (process.hrtime.bigint() < until) {
      // busy-wait: a timer would add scheduling noise of its own
    }
  }
  say(`t0 ${process.hrtime.bigint()}`);
  let promise;
  try {
    promise = start(op, Number(pidText), BigInt(offsetText), replaceText === '1');
  } catch (err) {
    promise = Promise.reject(err);
  }
  return promise.then(
    (result) => say(`t1 ${process.hrtime.bigint()} ok ${stringify(result ?? null)}`),
    (err) => {
      const details = { message: String(err && err.message), hint: err && err.hint, errno: err && err.errno, syscall: err && err.syscall };
      say(`t1 ${process.hrtime.bigint()} err ${(err && err.code) || 'EUNKNOWN'} ${JSON.stringify(details)}`);
    },
  );
}

let partial = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const lines = (partial + chunk).split('\n');
  partial = lines.pop();
  for (const line of lines) if (line.trim()) queue = queue.then(() => handle(line));
});
process.stdin.on('end', () => queue.then(() => process.exit(0)));
// Warm up before saying ready: the first call starts libuv's thread pool, which would otherwise
// count as part of the first operation. Inspecting ourselves needs no ptrace and changes nothing.
binding.inspect(process.pid).then(
  () => say(`ready ${process.pid}`),
  () => say(`ready ${process.pid}`),
);
