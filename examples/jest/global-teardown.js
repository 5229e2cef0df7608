// Runs once after all tests: restore the server's clock (and check it is exact again), then stop it.
const { getJson } = require('./http');

module.exports = async function globalTeardown() {
  const { server, handle } = globalThis.__timeskewExample;
  try {
    await handle.restore();
    const before = Date.now();
    const { now } = await getJson(`${process.env.TIMESKEW_EXAMPLE_URL}/now`);
    if (Math.abs(now - before) > 2000) throw new Error(`the server's clock is still off by ${now - before} ms after restore`);
  } finally {
    server.kill('SIGTERM');
  }
};
