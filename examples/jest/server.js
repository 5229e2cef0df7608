// The application under test: a tiny HTTP server that answers with its own clock. A real service
// would issue tokens, expire sessions or schedule jobs from the same clock.
const http = require('node:http');

const TOKEN_TTL_MS = 30 * 60 * 1000;

const server = http.createServer((req, res) => {
  const now = Date.now();
  let body;
  if (req.url === '/now') body = { now, iso: new Date(now).toISOString(), pid: process.pid };
  else if (req.url === '/token') body = { token: 'demo', issuedAt: now, expiresAt: now + TOKEN_TTL_MS };
  else {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
});

server.listen(0, '127.0.0.1', () => {
  // The test setup reads the port from this line.
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
