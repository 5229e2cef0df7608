// Runs once before all tests: start the server as a child process and put its clock one hour in
// the past. Tests find it through TIMESKEW_EXAMPLE_URL (test processes inherit the environment).
const { spawn } = require('node:child_process');
const path = require('node:path');
const { skewClock } = require('timeskew');

module.exports = async function globalSetup() {
  const server = spawn(process.execPath, [path.join(__dirname, 'server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    server.stdout.once('data', (chunk) => resolve(Number(/listening (\d+)/.exec(String(chunk))[1])));
    server.once('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
  });
  const handle = await skewClock(server.pid, { offset: '-1h' });
  process.env.TIMESKEW_EXAMPLE_URL = `http://127.0.0.1:${port}`;
  // Only globalTeardown can read what globalSetup leaves on globalThis.
  globalThis.__timeskewExample = { server, handle };
};
