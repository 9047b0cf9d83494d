// What every end-to-end script shares: where the binaries and screenshots are, a free port, a
// `skein` server on a fresh data directory (its children stopped and the directory removed on
// exit), the mock OpenAI upstream, headless Chromium, signed-in browser states, API calls,
// checks and steps, and screenshots. One copy here, so a fix to how the server is started or
// how a browser signs in reaches every scenario.
//
// Environment: SKEIN_BIN, MOCK_BIN (default: the debug builds in CARGO_TARGET_DIR or target/),
// CHROMIUM (default /usr/bin/chromium), E2E_VERBOSE=1 to see the servers' output.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

/** The repository root. */
export const repo = resolve(new URL('../..', import.meta.url).pathname);
/** Cargo's target directory (CARGO_TARGET_DIR, or target/ in the repository). */
export const targetDir = resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target');
/** Where screenshots go. */
export const shots = join(repo, 'target', 'screenshots');
/** The password every scenario's accounts share. */
export const PASSWORD = 'correct horse battery';
/** The model the mock upstream serves in every scenario. */
export const MODEL = 'mock-gpt';

const children = [];
const dirs = [];
let exiting = false;
/** Stops every process a script started and removes its temporary directories. */
export function cleanup() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  if (exiting) for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', () => {
  exiting = true;
  cleanup();
});
process.on('SIGINT', () => process.exit(130));

/** A logger that tags its lines with the scenario's name. */
export function logger(tag) {
  return (...args) => console.log(`[${tag}]`, ...args);
}

/** Throws (failing the scenario) unless `cond` holds. */
export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

/** Runs one named step, logging its time; a failure is logged and thrown. */
export function stepper(log) {
  return async (name, fn) => {
    const started = Date.now();
    try {
      await fn();
      log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      log(`FAIL ${name}: ${e.stack ?? e}`);
      throw e;
    }
  };
}

/** A TCP port nobody listens on right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
    srv.on('error', rej);
  });
}

/** A fresh temporary directory, removed when the script exits. */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/** The `skein` and `mock-upstream` binaries (SKEIN_BIN / MOCK_BIN, else the debug builds). */
export function binaries() {
  return {
    skein: process.env.SKEIN_BIN ?? join(targetDir, 'debug', 'skein'),
    mock: process.env.MOCK_BIN ?? join(targetDir, 'debug', 'mock-upstream'),
  };
}

/** Fails early, with the fix, when the binary or the built web app is missing. */
export function requireBuilt({ mock = false } = {}) {
  const bins = binaries();
  check(existsSync(bins.skein), `${bins.skein} exists (cargo build -p skein --bin skein)`);
  if (mock) check(existsSync(bins.mock), `${bins.mock} exists (cargo build -p skein-testkit --bin mock-upstream)`);
  check(existsSync(join(repo, 'web', 'dist', 'index.html')), 'web/dist is built (npm run build)');
  return bins;
}

/** Registers a started child so it is stopped on exit. */
export function adopt(child) {
  children.push(child);
  return child;
}

/**
 * Starts a process and resolves with the first match of `pattern` in its output (stdout or
 * stderr); rejects if it exits first or says nothing matching within 30 s.
 */
export function startAndWait(cmd, args, opts, pattern, name = cmd) {
  return new Promise((res, rej) => {
    const child = adopt(spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let done = false;
    const timer = setTimeout(() => !done && rej(new Error(`${name} did not start:\n${out}`)), 30_000);
    const onData = (chunk) => {
      if (process.env.E2E_VERBOSE) process.stderr.write(chunk);
      if (done) return;
      out += chunk;
      const m = out.match(pattern);
      if (m) {
        done = true;
        clearTimeout(timer);
        res({ child, match: m });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => !done && rej(new Error(`${name} exited with ${code}:\n${out}`)));
  });
}

/** Waits until `url` answers 2xx (30 s at most). */
export async function waitFor(url) {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer`);
}

/** The mock OpenAI upstream (key `sk-upstream`); resolves with its base URL. */
export async function startMock({ pauseMs = 5, env = process.env } = {}) {
  const { mock } = binaries();
  const started = await startAndWait(mock, ['--key', 'sk-upstream', '--stream-pause-ms', String(pauseMs)], { env }, /MOCK_BASE_URL=(\S+)/, 'mock-upstream');
  return started.match[1];
}

/**
 * The real `skein` on a free port with a fresh data directory. `env` adds variables, or is a
 * function of the base URL answering them (the
 * auth rate limit is raised: every page load signs in silently, and many contexts from one IP
 * would exceed it); `root` makes a root account with that password first, the way an operator
 * does; `onOutput` sees every chunk of the server's output (e.g. a log provider's codes);
 * `waitPattern` resolves with its match instead of waiting for /readyz only.
 */
/** The last lines the servers this script started wrote (warnings and errors), shown when it fails. */
const serverTail = [];
function remember(name, chunk) {
  for (const line of String(chunk).split('\n')) if (line.trim()) serverTail.push(`${name}| ${line}`);
  serverTail.splice(0, Math.max(0, serverTail.length - 80));
}

export async function startSkein({ env: extra = {}, root, onOutput, waitPattern, name = 'skein' } = {}) {
  const { skein } = binaries();
  const data = tempDir(`skein-e2e-${name}-`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const more = typeof extra === 'function' ? extra(base) : extra;
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000', ...more };
  if (root) {
    const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${root}\n`, encoding: 'utf8' });
    check(made.status === 0, `create-user: ${made.stderr}`);
  }
  const args = ['serve', '--listen', `127.0.0.1:${port}`];
  let match = null;
  let child;
  if (waitPattern) {
    const started = await startAndWait(skein, args, { env }, waitPattern, name);
    ({ child, match } = started);
  } else {
    child = adopt(spawn(skein, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  }
  const onData = (chunk) => {
    if (process.env.E2E_VERBOSE) process.stderr.write(chunk);
    onOutput?.(chunk);
  };
  if (!waitPattern) {
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
  } else if (onOutput) {
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
  }
  child.stdout.on('data', (chunk) => remember(name, chunk));
  child.stderr.on('data', (chunk) => remember(name, chunk));
  await waitFor(`${base}/readyz`);
  return { base, port, env, data, child, match };
}

/**
 * `call(method, path, token, body)` against `base/api/v1/path`: the parsed JSON answer, or a
 * thrown error with the status and body when it is not 2xx.
 */
export function api(base) {
  return async (method, path, token, body) => {
    const r = await fetch(`${base}/api/v1/${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-skein-csrf': '1', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

/** Like `api`, but answers `{ status, json }` whatever the status. */
export function rawApi(base) {
  return async (path, { token, method = 'GET', body } = {}) => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : null };
  };
}

/** Signs in through the API; answers the body (access token and user). */
export async function signIn(base, login, password = PASSWORD) {
  const r = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login, password }) });
  if (!r.ok) throw new Error(`login ${login}: ${r.status}`);
  return r.json();
}

/**
 * A browser storage state signed in as `login` through its own new session: the HttpOnly
 * refresh cookie the server set, and the app's (non-secret) session marker, plus `extra`
 * local-storage entries (e.g. `skein.lang`). Contexts never share a refresh token: it rotates
 * on use, and reusing a rotated one ends the session. `onLogin` sees the response first.
 */
export async function loginState(base, login, { password = PASSWORD, extra = [], onLogin } = {}) {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-skein-csrf': '1' },
    body: JSON.stringify({ login, password }),
  });
  if (!r.ok) throw new Error(`login ${login}: ${r.status}`);
  if (onLogin) await onLogin(r.clone());
  const cookie = r.headers.getSetCookie().find((c) => c.startsWith('skein_refresh='));
  check(cookie, `a refresh cookie for ${login}`);
  const value = cookie.split(';')[0].slice('skein_refresh='.length);
  const { hostname } = new URL(base);
  return {
    cookies: [{ name: 'skein_refresh', value, domain: hostname, path: '/api/v1/auth', expires: -1, httpOnly: true, secure: false, sameSite: 'Strict' }],
    origins: [{ origin: base, localStorage: [{ name: 'skein.session', value: 'e2e' }, ...extra] }],
  };
}

/** Headless Chromium (CHROMIUM, default /usr/bin/chromium) with `args` added. */
export async function launchBrowser(args = []) {
  const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  check(existsSync(executablePath), `${executablePath} exists (apt-get install -y chromium)`);
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', ...args] });
}

/** The looks the screenshots are taken in. */
export const VIEWPORTS = {
  desktop: { viewport: { width: 1440, height: 900 } },
  phone: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
};

/** Saves a screenshot of `page` (or of a locator) as target/screenshots/`name`.png. */
export async function screenshot(target, name, opts = {}) {
  mkdirSync(shots, { recursive: true });
  const path = join(shots, `${name}.png`);
  await target.screenshot({ path, ...opts });
  return path;
}

/** How far the page scrolls sideways (0 when it fits its width). */
export function sidewaysOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

/** Runs `main`, exiting 0 when it resolves and 1 (with the error) when it throws. */
export function run(main, log = console.log) {
  main().then(
    () => process.exit(0),
    (e) => {
      log(`FAILED: ${e.stack ?? e}`);
      if (serverTail.length) log(`what the server said last:\n${serverTail.join('\n')}`);
      process.exit(1);
    },
  );
}

/**
 * A server set up through its API the way most scenarios need it: the mock upstream, `skein`
 * with a setup token, `root` (the first account) and `ada` registered, and `call` for the API.
 * Channels, prices and balances are each scenario's own.
 */
export async function apiScenario(name, { env = {}, pauseMs = 5 } = {}) {
  const setup = `e2e-${name}-setup-token-0123456789`;
  const mockUrl = await startMock({ pauseMs });
  const server = await startSkein({ name, env: { SKEIN_SETUP_TOKEN: setup, ...env } });
  const call = api(server.base);
  const register = async (username) => {
    const r = await call('POST', 'auth/register', null, { username, email: `${username}@example.com`, password: PASSWORD, setup_token: setup });
    return r.access_token;
  };
  const root = await register('root');
  const ada = await register('ada');
  const adaProfile = await call('GET', 'user/profile', ada);
  return { ...server, mockUrl, call, register, root, ada, adaProfile };
}
