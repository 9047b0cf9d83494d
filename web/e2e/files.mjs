// Large uploads on the Files page in real headless Chromium against the real binary: a 12 MiB
// file goes through an upload session (never the one-request POST); its second part is cut off
// until the page gives up, the user resumes and only the missing part is sent again; a session
// left open by an "earlier visit" is listed as unfinished and resumed by picking the same file
// again; a cancelled upload leaves no session behind. Screenshots at 1440 px light and 390 px
// dark, English and Chinese, go to target/screenshots/files-upload-*.png.
//
// Environment: SKEIN_BIN (default: CARGO_TARGET_DIR or target/debug/skein, built beforehand
// with the web app in web/dist), CHROMIUM (default /usr/bin/chromium).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const PASSWORD = 'correct horse battery';
const MIB = 1024 * 1024;
const SIZE = 12 * MIB; // two parts of the server's default 8 MiB
let failures = 0;
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[files]', ...a);
function check(ok, what) {
  if (!ok) {
    failures += 1;
    log(`FAIL ${what}`);
  }
}

const freePort = () =>
  new Promise((res) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });

async function waitReady(base) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('skein did not become ready');
}

/** `size` bytes of text (so any purpose takes it), different for every `seed`. */
function text(seed, size = SIZE) {
  const line = Buffer.from(`${seed}: the quick brown fox jumps over the lazy dog 0123456789\n`);
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += line.length) line.copy(out, i);
  return out;
}

async function login(base) {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-skein-csrf': '1' },
    body: JSON.stringify({ login: 'ada', password: PASSWORD }),
  });
  const body = await r.json();
  const value = r.headers.getSetCookie().find((c) => c.startsWith('skein_refresh=')).split(';')[0].slice('skein_refresh='.length);
  return { token: body.access_token, value };
}

async function state(base, extra) {
  const { value } = await login(base);
  return {
    cookies: [{ name: 'skein_refresh', value, domain: '127.0.0.1', path: '/api/v1/auth', expires: -1, httpOnly: true, secure: false, sameSite: 'Strict' }],
    origins: [{ origin: base, localStorage: [{ name: 'skein.session', value: 'e2e' }, ...extra] }],
  };
}

const looks = [
  { name: '1440-light-en', viewport: { width: 1440, height: 900 }, lang: 'en', theme: 'light', locale: 'en-US', resume: 'Resume', unfinished: 'Unfinished uploads' },
  { name: '1440-light-zh', viewport: { width: 1440, height: 900 }, lang: 'zh-CN', theme: 'light', locale: 'zh-CN', resume: '继续上传', unfinished: '未完成的上传' },
  { name: '390-dark-en', viewport: { width: 390, height: 844 }, lang: 'en', theme: 'dark', locale: 'en-US', isMobile: true, resume: 'Resume', unfinished: 'Unfinished uploads' },
  { name: '390-dark-zh', viewport: { width: 390, height: 844 }, lang: 'zh-CN', theme: 'dark', locale: 'zh-CN', isMobile: true, resume: '继续上传', unfinished: '未完成的上传' },
];

async function main() {
  check(existsSync(skein), `${skein} exists (cargo build -p skein)`);
  mkdirSync(shots, { recursive: true });
  const data = mkdtempSync(join(tmpdir(), 'skein-files-'));
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
  const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${PASSWORD}\n`, encoding: 'utf8' });
  check(made.status === 0, `create-user: ${made.stderr}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  children.push(spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: 'ignore' }));
  await waitReady(base);
  const reg = await fetch(`${base}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: PASSWORD }) });
  check(reg.status === 201, `register ada: ${reg.status}`);
  const { token } = await login(base);
  const auth = { authorization: `Bearer ${token}` };

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  for (const look of looks) {
    // An earlier visit: a session opened and its first part sent, then the tab closed.
    const earlier = `earlier ${look.name}.txt`;
    const earlierBytes = text(`earlier ${look.name}`);
    const opened = await fetch(`${base}/api/v1/files/uploads`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: earlier, purpose: 'knowledge', size: SIZE }) }).then((r) => r.json());
    check(opened.part_count === 2, `the server splits 12 MiB into two parts: ${JSON.stringify(opened)}`);
    const first = await fetch(`${base}/api/v1/files/uploads/${opened.id}/parts/1`, { method: 'PUT', headers: auth, body: earlierBytes.subarray(0, opened.part_size) });
    check(first.ok, `the earlier visit's part 1: ${first.status}`);

    const extra = [{ name: 'skein.lang', value: look.lang }, { name: 'skein.theme', value: look.theme }];
    const ctx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await state(base, extra) });
    const page = await ctx.newPage();
    const calls = [];
    page.on('request', (r) => r.url().includes('/api/v1/files') && calls.push(`${r.method()} ${new URL(r.url()).pathname}${new URL(r.url()).search}`));
    // Part 2 of the page's uploads is cut off until `cut` is turned off.
    let cut = true;
    let cuts = 0;
    await page.route(/\/api\/v1\/files\/uploads\/[^/]+\/parts\/2$/, (route) => {
      if (cut) {
        cuts += 1;
        return route.abort('connectionreset');
      }
      return route.continue();
    });

    await page.goto(`${base}/files`);
    await page.getByTestId('unfinished-uploads').getByText(earlier).waitFor();

    // A large file through the file input: part 1 arrives, part 2 keeps failing.
    const name = `big ${look.name}.txt`;
    await page.getByTestId('file-input').setInputFiles({ name, mimeType: 'text/plain', buffer: text(look.name) });
    const row = page.getByTestId('upload-row').filter({ hasText: name });
    await row.getByTestId('upload-resume').waitFor({ timeout: 30_000 });
    check(cuts === 3, `part 2 was tried three times before the page gave up: ${cuts}`);
    check(!calls.some((c) => c.startsWith('POST /api/v1/files?')), `a large file never goes through the one-request upload: ${calls.join(', ')}`);
    check(calls.includes('POST /api/v1/files/uploads'), 'the page opened an upload session');
    await page.screenshot({ path: join(shots, `files-upload-${look.name}.png`), fullPage: true });

    // Resume: only part 2 is sent again, and the file is listed.
    cut = false;
    calls.length = 0;
    await row.getByTestId('upload-resume').click();
    await page.getByTestId('files-grid').getByText(name).waitFor({ timeout: 60_000 });
    const parts = calls.filter((c) => c.startsWith('PUT '));
    check(parts.length === 1 && parts[0].endsWith('/parts/2'), `the resume sent only part 2: ${parts.join(', ')}`);
    check(calls.some((c) => /^GET \/api\/v1\/files\/uploads\/[^/]+$/.test(c)), 'the resume asked which parts the server has');

    // The earlier visit's session: pick the same file again; only its part 2 goes.
    calls.length = 0;
    const [chooser] = await Promise.all([
      page.waitForEvent('filechooser'),
      page.getByTestId('unfinished-uploads').getByRole('button', { name: look.resume }).click(),
    ]);
    await chooser.setFiles({ name: earlier, mimeType: 'text/plain', buffer: earlierBytes });
    await page.getByTestId('files-grid').getByText(earlier).waitFor({ timeout: 60_000 });
    const resent = calls.filter((c) => c.startsWith('PUT '));
    check(resent.length === 1 && resent[0] === `PUT /api/v1/files/uploads/${opened.id}/parts/2`, `the earlier session sent only part 2: ${resent.join(', ')}`);
    await page.getByTestId('unfinished-uploads').waitFor({ state: 'detached' });

    if (look.name === '1440-light-en') {
      // Cancel while part 1 is held in flight: the session is dropped on the server.
      let release;
      await page.route(/\/parts\/1$/, (route) => new Promise((r) => (release = r)).then(() => route.abort('aborted').catch(() => undefined)));
      await page.getByTestId('file-input').setInputFiles({ name: 'cancel me.txt', mimeType: 'text/plain', buffer: text('cancel') });
      const cancelRow = page.getByTestId('upload-row').filter({ hasText: 'cancel me.txt' });
      await cancelRow.getByTestId('upload-cancel').waitFor();
      for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 50));
      // The row goes at once; the session is gone only when the DELETE has been answered.
      const dropped = page.waitForResponse((r) => r.request().method() === 'DELETE' && /\/api\/v1\/files\/uploads\/[^/]+$/.test(r.url()));
      await cancelRow.getByTestId('upload-cancel').click();
      const answer = await dropped;
      check(answer.status() === 204 || answer.status() === 200, `the session DELETE succeeded: ${answer.status()}`);
      release?.();
      await cancelRow.waitFor({ state: 'detached' });
      const open = await fetch(`${base}/api/v1/files/uploads`, { headers: auth }).then((r) => r.json());
      check(Array.isArray(open) && open.length === 0, `no upload session is left open: ${JSON.stringify(open)}`);
    }
    await page.screenshot({ path: join(shots, `files-done-${look.name}.png`), fullPage: true });

    // The big text file's preview: its beginning, marked as cut.
    await page.getByTestId('files-grid').locator('div', { hasText: name }).getByTestId('preview-file').last().click();
    const previewText = page.getByTestId('preview-text');
    await previewText.waitFor();
    check((await previewText.textContent()).startsWith(`${look.name}: the quick brown fox`), 'the preview shows the text');
    await page.screenshot({ path: join(shots, `files-preview-${look.name}.png`) });
    await page.keyboard.press('Escape');
    await ctx.close();
  }

  // Every file is whole on the server.
  const list = await fetch(`${base}/api/v1/files?per_page=50`, { headers: auth }).then((r) => r.json());
  const big = list.items.filter((f) => f.name.startsWith('big ') || f.name.startsWith('earlier '));
  check(big.length === looks.length * 2 && big.every((f) => f.size === SIZE), `eight 12 MiB files listed: ${JSON.stringify(list.items.map((f) => [f.name, f.size]))}`);
  const one = big.find((f) => f.name === `big ${looks[0].name}.txt`);
  const got = Buffer.from(await fetch(`${base}${one.content_url}`, { headers: auth }).then((r) => r.arrayBuffer()));
  check(got.equals(text(looks[0].name)), 'the downloaded file is the uploaded one, byte for byte');
  await browser.close();
  log(failures ? `${failures} check(s) failed` : `all checks passed; screenshots in ${shots}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
