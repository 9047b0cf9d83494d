// The avatar crop tool in real headless Chromium against the real binary: a user picks a
// picture on the settings page, drags and zooms it in the crop dialog, saves, and the server
// stores the framed square. Screenshots of the dialog at 1440 px light English and 390 px dark
// Chinese go to target/screenshots/avatar-crop-*.png.
//
// Environment: SKEIN_BIN (default: CARGO_TARGET_DIR or target/debug/skein, built beforehand
// with the web app in web/dist), CHROMIUM (default /usr/bin/chromium).
import { crc32, deflateSync } from 'node:zlib';
import { PASSWORD, check, launchBrowser, loginState, logger, requireBuilt, run, screenshot, signIn, startSkein } from './harness.mjs';

const log = logger('avatar');

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

const looks = [
  { name: 'desktop-light-en', viewport: { width: 1440, height: 900 }, lang: 'en', theme: 'light', locale: 'en-US', save: 'Use this picture' },
  { name: 'phone-dark-zh', viewport: { width: 390, height: 844 }, lang: 'zh-CN', theme: 'dark', locale: 'zh-CN', isMobile: true, save: '使用此图片' },
];

async function main() {
  requireBuilt();
  const { base } = await startSkein({ name: 'avatar', root: PASSWORD });
  const reg = await fetch(`${base}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: PASSWORD }) });
  check(reg.status === 201, `register ada: ${reg.status}`);

  const browser = await launchBrowser();
  for (const look of looks) {
    const extra = [{ name: 'skein.lang', value: look.lang }, { name: 'skein.theme', value: look.theme }];
    const ctx = await browser.newContext({ viewport: look.viewport, locale: look.locale, isMobile: look.isMobile, hasTouch: look.isMobile, storageState: await loginState(base, 'ada', { extra }) });
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
    await screenshot(page, `avatar-crop-${look.name}`);
    const saved = page.waitForResponse((r) => r.url().endsWith('/api/v1/user/avatar') && r.request().method() === 'PUT');
    await page.getByRole('button', { name: look.save }).click();
    const answer = await saved;
    check(answer.ok(), `the cropped avatar is accepted: ${answer.status()}`);
    await frame.waitFor({ state: 'detached' });
    await ctx.close();
  }
  // The stored avatar is served.
  const me = await signIn(base, 'ada');
  const avatar = await fetch(`${base}/api/v1/users/${me.user.id}/avatar`, { headers: { authorization: `Bearer ${me.access_token}` } });
  check(avatar.ok && (avatar.headers.get('content-type') ?? '').startsWith('image/'), `the avatar is served: ${avatar.status}`);
  await browser.close();
  log('all checks passed');
}

run(main, log);
