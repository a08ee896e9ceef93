// Starts the real attendance-server binary (target/debug/attendance-server)
// on SQLite in a temporary directory, finds its address from the
// `listening on http://ADDR` line, stops it and restarts it on the same
// database (and, when asked, the same port).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BINARY = path.join(ROOT, 'target/debug/attendance-server');
export const KEY = 'APIe2etests';
export const SECRET = 'an-end-to-end-test-secret-of-more-than-32-chars';

const STARTUP_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 3000;

function spawnServer(dbUrl, listen, extraArgs) {
  const child = spawn(BINARY, [
    // The tests mix demo rooms and real ones on one database, and restart it.
    'serve', '--demo', '--demo-with-real-data',
    '--listen', listen,
    '--database-url', dbUrl,
    '--www-dir', path.join(ROOT, 'www'),
    '--sweep-interval', '200ms',
    ...extraArgs,
  ], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      RUST_LOG: process.env.RUST_LOG || 'warn',
      LIVEKIT_API_KEY: KEY,
      LIVEKIT_API_SECRET: SECRET,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return child;
}

/** Resolves with `http://ADDR` once the server printed it; rejects if it exits first. */
function waitForAddress(child, logs) {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => {
      reject(new Error(`attendance-server did not start within ${STARTUP_TIMEOUT_MS} ms:\n${logs.join('')}`));
    }, STARTUP_TIMEOUT_MS);
    const onData = (chunk) => {
      buffer += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(buffer);
      if (match) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(match[1]);
      }
    };
    const onExit = (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`attendance-server exited (${code ?? signal}) before listening:\n${logs.join('')}`));
    };
    child.stdout.setEncoding('utf8');
    // Keep draining stdout so the server never blocks on a full pipe.
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

export class Server {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'attendance-e2e-'));
    this.dbUrl = `sqlite://${this.dir}/a.db`;
    this.child = null;
    this.url = null;
    this.port = null;
    /** Last lines of stderr, shown when something fails. */
    this.logs = [];
  }

  /** Starts the server; `port` 0 (default) picks a free one. */
  async start({ port = 0, extraArgs = [] } = {}) {
    if (!existsSync(BINARY)) {
      throw new Error(`${BINARY} is missing: run \`cargo build -p attendance-server\``);
    }
    const child = spawnServer(this.dbUrl, `127.0.0.1:${port}`, extraArgs);
    this.child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      this.logs.push(chunk);
      if (this.logs.length > 200) this.logs.splice(0, this.logs.length - 200);
    });
    this.url = await waitForAddress(child, this.logs);
    this.port = Number(new URL(this.url).port);
    return this;
  }

  /** SIGTERM, then SIGKILL if it has not exited within a few seconds. */
  async stop({ signal = 'SIGTERM' } = {}) {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  /**
   * Stops the server and starts it again on the same database. With
   * `samePort` (default) it listens on the port it had, so pages reconnect
   * to the same URL; the bind is retried briefly while the port is released.
   */
  async restart({ samePort = true, signal = 'SIGTERM' } = {}) {
    const port = samePort ? this.port : 0;
    await this.stop({ signal });
    let lastError;
    for (let attempt = 0; attempt < 20; attempt += 1) {
      try {
        return await this.start({ port });
      } catch (e) {
        lastError = e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    throw lastError;
  }

  /** Stops the server and deletes its database. */
  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** fetch relative to the server, with an optional bearer token and JSON body. */
  async fetch(pathname, { method = 'GET', token, body, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    let payload = body;
    if (body !== undefined && typeof body !== 'string') {
      payload = JSON.stringify(body);
      h['Content-Type'] = 'application/json';
    }
    return fetch(this.url + pathname, { method, headers: h, body: payload, signal: AbortSignal.timeout(10000) });
  }

  /** fetch + JSON; throws on a non-2xx status. */
  async json(pathname, options) {
    const res = await this.fetch(pathname, options);
    const text = await res.text();
    if (!res.ok) throw new Error(`${options?.method || 'GET'} ${pathname}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** POSTs a webhook body with a raw `Authorization` token (no Bearer), as LiveKit does. */
  postWebhook(body, authorization) {
    const headers = { 'Content-Type': 'application/webhook+json' };
    if (authorization !== undefined) headers.Authorization = authorization;
    return fetch(this.url + '/webhooks/livekit', {
      method: 'POST', headers, body, signal: AbortSignal.timeout(10000),
    });
  }

  /** Waits until every stored webhook was processed (needs an admin token). */
  async settle(adminToken, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pending = await this.json('/api/admin/webhooks?status=pending', { token: adminToken });
      if (Array.isArray(pending.webhooks) && pending.webhooks.length === 0) return;
      if (Date.now() > deadline) throw new Error(`webhooks still pending: ${JSON.stringify(pending)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Starts a fresh server on a fresh SQLite database. */
export async function startServer(options) {
  const server = new Server();
  try {
    return await server.start(options);
  } catch (e) {
    await server.close();
    throw e;
  }
}

/** Polls `check` until it returns a truthy value (returned) or times out. */
export async function eventually(check, { timeoutMs = 5000, intervalMs = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${message}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
