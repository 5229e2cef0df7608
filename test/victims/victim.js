'use strict';
// Node victim for the timeskew tests: V8's Date.now() and libuv's hrtime both
// read the clock through glibc, hence the vDSO. Protocol as in victim.c,
// reduced to: now, exit <code>, EOF. Plain CommonJS, no dependencies, so it
// runs with the bare node binary.
const readline = require('node:readline');

// Writes to a pipe are synchronous on Linux, so a reply is out before exit.
const reply = (line) => process.stdout.write(line + '\n');

reply(`ready ${process.pid}`);

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (raw) => {
  const line = raw.trim();
  if (line === 'now') {
    const datenow = (BigInt(Date.now()) * 1000000n).toString();
    reply(`datenow=${datenow} hrtime=${process.hrtime.bigint()} realtime=${datenow}`);
  } else if (/^exit -?\d+$/.test(line)) {
    process.exit(Number(line.slice(5)));
  } else {
    reply(`error unknown command: ${line}`);
  }
});
rl.on('close', () => process.exit(0));
