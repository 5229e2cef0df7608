// The server's clock is one hour behind; these tests see it only through the server's own API.
const { getJson } = require('./http');

const HOUR_MS = 60 * 60 * 1000;
const SLACK_MS = 2000;
const url = (route) => `${process.env.TIMESKEW_EXAMPLE_URL}${route}`;

test('the server reports a time one hour in the past', async () => {
  const before = Date.now();
  const { now } = await getJson(url('/now'));
  const after = Date.now();
  expect(now).toBeGreaterThanOrEqual(before - HOUR_MS - SLACK_MS);
  expect(now).toBeLessThanOrEqual(after - HOUR_MS + SLACK_MS);
});

test('a 30-minute token the server issues right now has already expired in real time', async () => {
  const { expiresAt } = await getJson(url('/token'));
  expect(expiresAt).toBeLessThan(Date.now());
  expect(Date.now() - expiresAt).toBeGreaterThan(25 * 60 * 1000);
});
