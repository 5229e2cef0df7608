// Runs once before the `server` tests: start the server as a child process and put its clock one
// hour in the past; hand its URL to the tests with provide(). The function it returns is the
// teardown: restore the clock (and check it is exact again), then stop the server.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { skewClock } from 'timeskew';
import { getJson } from './http.js';

export default async function setup({ provide }) {
  const server = spawn(process.execPath, [fileURLToPath(new URL('./server.cjs', import.meta.url))], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    server.stdout.once('data', (chunk) => resolve(Number(/listening (\d+)/.exec(String(chunk))[1])));
    server.once('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
  });
  const handle = await skewClock(server.pid, { offset: '-1h' });
  const url = `http://127.0.0.1:${port}`;
  provide('serverUrl', url);

  return async function teardown() {
    try {
      await handle.restore();
      const before = Date.now();
      const { now } = await getJson(`${url}/now`);
      if (Math.abs(now - before) > 2000) throw new Error(`the server's clock is still off by ${now - before} ms after restore`);
    } finally {
      server.kill('SIGTERM');
    }
  };
}
