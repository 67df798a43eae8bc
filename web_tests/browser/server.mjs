// A tiny static server for the browser tests (node:http only, 127.0.0.1, a free port picked by
// the OS). Each mount maps a URL prefix to a folder; `..` and symlink escapes are refused.
// An HTML file may hold the marker <!--IMPORTMAP-->, replaced by an inline import map. Responses
// carry a strict Content-Security-Policy by default, the one strict sites and extensions use.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { readFile, realpath, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const JS_DIR = join(REPO, 'js');

/**
 * The import map a plain page needs for the package: `bgtasks` alone, mapped to the "browser"
 * condition of js/package.json's exports (read from it, so the map follows the package). Every
 * import below that entry is relative; `base` is the URL where js/ is mounted.
 */
export async function importMapFor(base = '/js/') {
  const pkg = JSON.parse(await readFile(join(JS_DIR, 'package.json'), 'utf8'));
  const entry = pkg.exports['.'].browser;
  if (typeof entry !== 'string') throw new Error('js/package.json has no "browser" condition for "."');
  return { imports: { [pkg.name]: base + entry.replace(/^\.\//, '') } };
}

/**
 * The strict policy pages are served with: scripts only from the origin, wasm compilation, and
 * inline scripts only with the response's nonce (the injected import map carries it). No
 * 'unsafe-eval': `eval` and `new Function` are refused and reported.
 */
export function strictCsp(nonce) {
  return `script-src 'self' 'wasm-unsafe-eval' 'nonce-${nonce}'; object-src 'none'; base-uri 'none'`;
}

/**
 * Starts the server. mounts: { '/js/': '/abs/dir', '/': '/abs/dir' } (longest prefix wins).
 * Every response carries the strict CSP (strictCsp) unless `csp: false`.
 * Returns { origin, requests, close() }; `requests` logs `${status} ${url}` for every request.
 */
export async function startServer(mounts, { importMap = null, csp = true } = {}) {
  const roots = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, resolve(dir)])
    .sort((a, b) => b[0].length - a[0].length);
  const requests = [];

  async function respond(req, res) {
    const url = new URL(req.url, 'http://127.0.0.1');
    let pathname;
    try {
      pathname = decodeURIComponent(url.pathname);
    } catch {
      return [400, 'bad path'];
    }
    const mount = roots.find(([prefix]) => pathname.startsWith(prefix));
    if (!mount || pathname.includes('\0')) return [404, 'not found'];
    const [prefix, root] = mount;
    let file = resolve(root, '.' + sep + pathname.slice(prefix.length));
    if (file !== root && !file.startsWith(root + sep)) return [403, 'forbidden'];
    try {
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const real = await realpath(file);
      // node_modules entries may be symlinks (npm link / file: deps); only js/ content is ever served.
      if (!real.startsWith((await realpath(root)) + sep)) return [403, 'forbidden'];
      let body = await readFile(real);
      const type = MIME[extname(real).toLowerCase()] ?? 'application/octet-stream';
      const nonce = randomBytes(16).toString('base64');
      if (importMap && extname(real) === '.html') {
        const tag = `<script type="importmap" nonce="${nonce}">${JSON.stringify(importMap)}</script>`;
        body = Buffer.from(body.toString('utf8').replace('<!--IMPORTMAP-->', tag));
      }
      const headers = { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-store' };
      // On every response: a worker script's own response sets the worker's policy.
      if (csp) headers['content-security-policy'] = strictCsp(nonce);
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return [200];
    } catch (e) {
      return e?.code === 'ENOENT' || e?.code === 'ENOTDIR' ? [404, 'not found'] : [500, String(e?.message ?? e)];
    }
  }

  const server = createServer((req, res) => {
    respond(req, res).then(([status, text]) => {
      requests.push(`${status} ${req.url}`);
      if (status === 200) return;
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
    });
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections?.();
        server.close(() => ok());
      }),
  };
}
