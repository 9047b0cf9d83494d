// End to end: sign-up by SMS code in real headless Chromium against the real `skein` binary
// with `sms.provider = "log"` (the code is read from the server's log, as a developer would).
// A visitor opens the phone tab, asks for a code, types it and lands signed in with a new
// account; the personal centre shows the bound number. Saves screenshots (390 px dark, English
// and Chinese) to target/screenshots/phone-*.png.
//
// Environment: SKEIN_BIN (default CARGO_TARGET_DIR/debug/skein), CHROMIUM. Needs web/dist.
import { PASSWORD, check as must, launchBrowser, logger, requireBuilt, run, screenshot, startSkein } from './harness.mjs';

const log = logger('e2e phone');
function check(ok, what) {
  must(ok, what);
  log(`ok: ${what}`);
}

async function main() {
  requireBuilt();
  // The log provider writes each code to the log: keep the last one per number.
  const codes = new Map();
  const read = (chunk) => {
    for (const line of String(chunk).split('\n')) {
      const m = line.match(/"phone":"(\+\d+)".*"code":"(\d{6})"|"code":"(\d{6})".*"phone":"(\+\d+)"/);
      if (m) codes.set(m[1] ?? m[4], m[2] ?? m[3]);
    }
  };
  const { base } = await startSkein({ name: 'phone', root: PASSWORD, env: { SKEIN_LOG_FORMAT: 'json', SKEIN_SMS__PROVIDER: 'log' }, onOutput: read });

  const browser = await launchBrowser();
  for (const [lang, phone, tab, send, signIn] of [
    ['en', '+8613800138000', 'Phone', 'Send code', 'Sign in'],
    ['zh-CN', '+8613900139000', '手机号', '获取验证码', '登录'],
  ]) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark', locale: lang });
    await context.addInitScript((l) => {
      localStorage.setItem('skein.lang', l);
      localStorage.setItem('skein.theme', 'dark');
    }, lang);
    const page = await context.newPage();
    await page.goto(`${base}/login`);
    await page.getByRole('tab', { name: tab }).click();
    await page.locator('input[name=phone]').fill(phone);
    await page.getByRole('button', { name: send }).click();
    await page.getByTestId('phone-sent').waitFor();
    for (let i = 0; i < 50 && !codes.has(phone); i++) await new Promise((r) => setTimeout(r, 100));
    check(codes.has(phone), `the code for ${phone} is in the log`);
    await page.locator('input[name=code]').fill(codes.get(phone));
    await screenshot(page, `phone-signin-390-dark-${lang}`, { fullPage: true });
    await page.getByRole('button', { name: signIn, exact: true }).click();
    await page.waitForURL(/\/chat/);
    check(true, `signed up by SMS code (${lang})`);
    await page.goto(`${base}/settings`);
    await page.getByTestId('phone-current').waitFor();
    check((await page.getByTestId('phone-current').textContent()) === phone, 'the personal centre shows the number');
    await page.getByTestId('phone-card').scrollIntoViewIfNeeded();
    await screenshot(page.getByTestId('phone-card'), `phone-card-390-dark-${lang}`);
    await context.close();
  }
  await browser.close();
}

run(main, log);
