// A school's webhook receiver, for the outbound webhook tests
// (crates/attendance-server/tests/outbound.rs start it): every delivery is
// verified with the official Standard Webhooks library (npm
// `standardwebhooks`), as a receiver would, and kept for the test to read.
//
//   POST /hook        a delivery: verified, then answered 500 while told to
//                     fail, else 204 (401 when the signature does not hold)
//   POST /control     {"secret"?, "fail"?: true|false}
//   GET  /deliveries  every delivery so far, in order of arrival:
//                     {id, timestamp, signature, status, verified, error, body}
//
// Prints `listening on http://127.0.0.1:PORT` once ready.
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const state = { secret: null, fail: false, deliveries: [] };

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function verify(body, headers) {
  try {
    new Webhook(state.secret).verify(body, headers);
    return { verified: true, error: null };
  } catch (error) {
    return { verified: false, error: String(error.message || error) };
  }
}

function answer(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(value === undefined ? '' : JSON.stringify(value));
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  if (req.method === 'POST' && req.url === '/hook') {
    const { verified, error } = state.secret ? verify(body, req.headers) : { verified: false, error: 'no secret yet' };
    const status = state.fail ? 500 : verified ? 204 : 401;
    state.deliveries.push({
      id: req.headers['webhook-id'] ?? null,
      timestamp: req.headers['webhook-timestamp'] ?? null,
      signature: req.headers['webhook-signature'] ?? null,
      status,
      verified,
      error,
      body,
    });
    if (status === 500) return answer(res, 500, { error: 'failing on purpose' });
    return answer(res, status);
  }
  if (req.method === 'POST' && req.url === '/control') {
    const control = JSON.parse(body || '{}');
    if ('secret' in control) state.secret = control.secret;
    if ('fail' in control) state.fail = Boolean(control.fail);
    return answer(res, 200, { ok: true });
  }
  if (req.method === 'GET' && req.url === '/deliveries') {
    return answer(res, 200, { deliveries: state.deliveries });
  }
  return answer(res, 404, { error: 'not found' });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
