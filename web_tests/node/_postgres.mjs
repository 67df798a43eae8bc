// A throw-away PostgreSQL cluster for the PostgresStore tests (not a test file itself): initdb in a
// temp folder, the server on a free local port with its socket in that folder, stopped and removed
// after the test file. Run as an unprivileged user when the tests run as root (the server refuses
// root). The server binaries are looked up in BGTASKS_PG_BIN, then /usr/lib/postgresql/<v>/bin
// (Debian's `postgresql` package), then PATH. Missing binaries fail the tests unless
// BGTASKS_SKIP_POSTGRES=1 says to skip them.
import { execFile, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { access, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const USER = 'bgtasks'; // the database superuser initdb creates

async function exists(path) {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function findBin() {
  if (process.env.BGTASKS_PG_BIN) return process.env.BGTASKS_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = (await readdir(root).catch(() => []))
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (await exists(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir && (await exists(join(dir, 'initdb')))) return dir;
  return null;
}

/** Whether the PostgreSQL tests should run: skip options for node:test, or throws when the binaries are missing and no opt-out is set. */
export async function postgresAvailable() {
  const bin = await findBin();
  if (bin) return { bin, skip: false };
  if (process.env.BGTASKS_SKIP_POSTGRES === '1') return { bin: null, skip: 'no PostgreSQL server binaries (BGTASKS_SKIP_POSTGRES=1)' };
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian\'s `postgresql`, set BGTASKS_PG_BIN, or set BGTASKS_SKIP_POSTGRES=1 to skip these tests',
  );
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// The user the server runs as: the caller, or (as root) Debian's `postgres` user, else `nobody`.
async function serverUser() {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    try {
      const { stdout } = await run('id', ['-u', name]);
      const gid = (await run('id', ['-g', name])).stdout.trim();
      return { name, uid: Number(stdout.trim()), gid: Number(gid) };
    } catch {
      // try the next
    }
  }
  throw new Error('running as root, and neither a `postgres` nor a `nobody` user exists to run the server');
}

export class Cluster {
  #bin;
  #user;
  dir;
  port;

  constructor(bin, user, dir, port) {
    this.#bin = bin;
    this.#user = user;
    this.dir = dir;
    this.port = port;
  }

  get url() {
    return `postgresql://${USER}@127.0.0.1:${this.port}/postgres`;
  }

  async #as(tool, args) {
    const path = join(this.#bin, tool);
    const [cmd, argv] = this.#user ? ['runuser', ['-u', this.#user.name, '--', path, ...args]] : [path, args];
    try {
      // cwd: the server's user may not be allowed into the caller's folder.
      return await run(cmd, argv, { cwd: this.dir, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (e) {
      throw new Error(`${tool} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  }

  async init() {
    await this.#as('initdb', ['-D', join(this.dir, 'data'), '-U', USER, '-A', 'trust', '-E', 'UTF8', '--no-instructions']);
  }

  async start() {
    // fsync stays on: the SIGKILL test relies on what a commit acknowledged.
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=200`;
    await this.#as('pg_ctl', ['-D', join(this.dir, 'data'), '-l', join(this.dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  }

  /** Stops the server at once (`immediate`: connections are cut as in a crash). */
  async stop() {
    await this.#as('pg_ctl', ['-D', join(this.dir, 'data'), '-m', 'immediate', '-w', 'stop']);
  }

  async destroy() {
    await this.stop().catch(() => {});
    await rm(this.dir, { recursive: true, force: true, maxRetries: 10 });
  }

  /** destroy() for a process that is exiting without running its after hooks (synchronous). */
  destroySync() {
    const path = join(this.#bin, 'pg_ctl');
    const args = ['-D', join(this.dir, 'data'), '-m', 'immediate', '-w', 'stop'];
    try {
      if (this.#user) execFileSync('runuser', ['-u', this.#user.name, '--', path, ...args], { cwd: this.dir, stdio: 'ignore' });
      else execFileSync(path, args, { cwd: this.dir, stdio: 'ignore' });
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Starts a fresh cluster for the test file's tests and removes it after them (`after` from node:test). */
export async function startCluster(after, bin) {
  const user = await serverUser();
  const dir = await mkdtemp(join(tmpdir(), 'bgtasks-pg-'));
  if (user) await chown(dir, user.uid, user.gid);
  const cluster = new Cluster(bin, user, dir, await freePort());
  // A process that ends early (an uncaught error, a promise nobody settles) still stops its server.
  const onExit = () => cluster.destroySync();
  process.once('exit', onExit);
  after(async () => {
    process.off('exit', onExit);
    await cluster.destroy();
  });
  await cluster.init();
  await cluster.start();
  return cluster;
}
