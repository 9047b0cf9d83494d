// The avatar crop tool in real headless Chromium against the real binary: a user picks a
// picture on the settings page, drags and zooms it in the crop dialog, saves, and the server
// stores the framed square. Screenshots of the dialog at 1440 px light English and 390 px dark
// Chinese go to target/screenshots/avatar-crop-*.png.
//
// Environment: SKEIN_BIN (default: CARGO_TARGET_DIR or target/debug/skein, built beforehand
// with the web app in web/dist), CHROMIUM (default /usr/bin/chromium).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const repo = resolve(new URL('../..', import.meta.url).pathname);
const skein = process.env.SKEIN_BIN ?? join(resolve(repo, process.env.CARGO_TARGET_DIR ?? 'target'), 'debug', 'skein');
const shots = join(repo, 'target', 'screenshots');
const PASSWORD = 'correct horse battery';
let failures = 0;
const children = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGTERM')));

const log = (...a) => console.log('[avatar]', ...a);
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

/** A 600 × 400 RGB PNG: red on the left, blue on the right, a white disc in the middle. */
function picture() {
  const w = 600;
  const h = 400;
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const i = y * (w * 3 + 1) + 1 + x * 3;
      const disc = (x - 300) ** 2 + (y - 200) ** 2 < 80 ** 2;
      raw[i] = disc ? 255 : x < 300 ? 220 : 30;
      raw[i + 1] = disc ? 255 : Math.floor((y / h) * 160);
      raw[i + 2] = disc ? 255 : x < 300 ? 40 : 230;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

async function loginState(base, login, extra = []) {
  const r = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-skein-csrf': '1' },
    body: JSON.stringify({ login, password: PASSWORD }),
  });
  const value = r.headers.getSetCookie().find((c) => c.startsWith('skein_refresh=')).split(';')[0].slice('skein_refresh='.length);
  return {
    cookies: [{ name: 'skein_refresh', value, domain: '127.0.0.1', path: '/api/v1/auth', expires: -1, httpOnly: true, secure: false, sameSite: 'Strict' }],
    origins: [{ origin: base, localStorage: [{ name: 'skein.session', value: 'e2e' }, ...extra] }],
  };
}

const looks = [
  { name: 'desktop-light-en', viewport: { width: 1440, height: 900 }, lang: 'en', theme: 'light', locale: 'en-US', save: 'Use this picture' },
  { name: 'phone-dark-zh', viewport: { width: 390, height: 844 }, lang: 'zh-CN', theme: 'dark', locale: 'zh-CN', isMobile: true, save: '使用此图片' },
];

async function main() {
  check(existsSync(skein), `${skein} exists (cargo build -p skein)`);
  mkdirSync(shots, { recursive: true });
  const data = mkdtempSync(join(tmpdir(), 'skein-avatar-'));
  const env = { ...process.env, SKEIN_DATA_DIR: data, RUST_LOG: 'warn', SKEIN_LIMITS__AUTH_PER_IP_PER_MINUTE: '10000' };
  const made = spawnSync(skein, ['admin', 'create-user', '--username', 'root', '--role', 'root', '--password-stdin'], { env, input: `${PASSWORD}\n`, encoding: 'utf8' });
  check(made.status === 0, `create-user: ${made.stderr}`);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  children.push(spawn(skein, ['serve', '--listen', `127.0.0.1:${port}`], { env, stdio: 'ignore' }));
  await waitReady(base);
  const reg = await fetch(`${base}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: PASSWORD }) });
  check(reg.status === 201, `register ada: ${reg.status}`);

  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  for (const look of looks) {
    const extra = [{ name: 'skein.lang', value: look.lang }, { name: 'skein.theme', value: look.theme }];
    const ctx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'ada', extra) });
    const page = await ctx.newPage();
    await page.goto(`${base}/settings`);
    await page.getByTestId('avatar').waitFor();
    await page.getByTestId('avatar-file').setInputFiles({ name: 'holiday.png', mimeType: 'image/png', buffer: picture() });
    const frame = page.getByTestId('crop-frame');
    await frame.waitFor();
    await page.waitForFunction(() => !document.querySelector('[data-testid="crop-frame"] img')?.style.visibility);
    // Drag the picture to the right (its red half into the frame), then zoom in.
    const box = await frame.boundingBox();
    await page.mouse.move(box.x + 128, box.y + 128);
    await page.mouse.down();
    await page.mouse.move(box.x + 228, box.y + 128, { steps: 5 });
    await page.mouse.up();
    await page.locator('input[type="range"]').fill('1.6');
    await page.screenshot({ path: join(shots, `avatar-crop-${look.name}.png`) });
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/user/avatar') && r.request().method() === 'PUT');
    await page.getByRole('button', { name: look.save }).click();
    const answer = await saved;
    check(answer.ok(), `the cropped avatar is accepted: ${answer.status()}`);
    await frame.waitFor({ state: 'detached' });
    await ctx.close();
  }
  // The stored avatar is served.
  const me = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'ada', password: PASSWORD }) }).then((r) => r.json());
  const avatar = await fetch(`${base}/api/v1/users/${me.user.id}/avatar`, { headers: { authorization: `Bearer ${me.access_token}` } });
  check(avatar.ok && (avatar.headers.get('content-type') ?? '').startsWith('image/'), `the avatar is served: ${avatar.status}`);
  await browser.close();
  log(failures ? `${failures} check(s) failed` : `all checks passed; screenshots in ${shots}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
