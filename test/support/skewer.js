'use strict';
// A separate skewing process for test/crash-restore.test.ts: installs a -600 s CLOCK_REALTIME skew
// into the process whose pid is argv[2] through the raw addon, prints `skewed <pid> <json>`, then
// waits (the test SIGKILLs it). It also leaves when its stdin closes, so a test run that died
// cannot leave it behind. Plain CommonJS: run with the bare node binary.
const path = require('node:path');

const binding = require('node-gyp-build')(path.resolve(__dirname, '..', '..'));

const pid = Number(process.argv[2]);
const offsetsNs = new Array(12).fill(0n);
offsetsNs[0] = -600n * 10n ** 9n;

binding.install({ pid, mask: 1, offsetsNs, replace: false, forceSyscall: false }).then(
  (result) => {
    process.stdout.write(`skewed ${process.pid} ${JSON.stringify(result)}\n`);
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  },
  (err) => {
    process.stdout.write(`error ${err.code} ${JSON.stringify(err.message)}\n`);
    process.exit(1);
  },
);
