// A small reverse proxy (node:http and node:net only) that serves `target`
// under a sub-path such as `/attendance/`, WebSocket upgrades included, as a
// school's nginx or Caddy would. Paths outside the prefix get 404.
import http from 'node:http';
import net from 'node:net';

export async function startProxy(target, prefix = '/attendance/') {
  const to = new URL(target);
  const strip = (url) => (url.startsWith(prefix) ? `/${url.slice(prefix.length)}` : null);
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    const path = strip(req.url);
    if (path === null) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not under ${prefix}: ${req.url}`);
      return;
    }
    const upstream = http.request({
      host: to.hostname, port: to.port, method: req.method, path,
      headers: { ...req.headers, host: to.host, 'x-forwarded-prefix': prefix.replace(/\/$/, '') },
    }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    requests.push(req.url);
    const path = strip(req.url);
    if (path === null) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = net.connect(Number(to.port), to.hostname, () => {
      const lines = [`${req.method} ${path} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? to.host : req.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head && head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const close = () => { upstream.destroy(); socket.destroy(); };
    upstream.on('error', close);
    socket.on('error', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}
