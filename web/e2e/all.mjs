// Runs every end-to-end script, a few at a time (E2E_JOBS, default 2): each starts its own
// skein, mock upstream and Chromium on free ports with its own data folder, so they do not
// share anything but the machine, and most of their time is spent waiting on pages. The
// binaries are built once first, with the test build's features (SKEIN_BIN / MOCK_BIN name
// them otherwise). A script's output
// is printed whole when it ends, under its name and time; the run fails if any script failed,
// and says which. `node e2e/all.mjs tools.mjs files.mjs` runs only those.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repo } from './harness.mjs';

/** Every script, with what it shows, the longest first so the slots fill evenly. */
const SCRIPTS = [
  ['a11y.mjs', 'accessibility (axe-core) on every page, light and dark, 1440 and 390 px'],
  ['run.mjs', 'the chat app end to end (real skein binary, mock upstream)'],
  ['agents.mjs', 'assistants (editor, versions, market, chat)'],
  ['billing.mjs', 'top-up, plans and bills (local EPay gateway, refunds)'],
  ['adminlog.mjs', 'the admin request log (failover, errors, attempts, model probes)'],
  ['settings.mjs', 'system settings, invites and key snippets'],
  ['files.mjs', 'large uploads (upload sessions: a cut-off part, resume, cancel)'],
  ['knowledge.mjs', 'knowledge bases (upload, chunks, hit testing in Chinese and English)'],
  ['tools.mjs', 'a tool call that asks for approval (approve, deny, charge)'],
  ['signin.mjs', 'Admin → Sign-in and passkeys (virtual authenticator)'],
  ['oauth.mjs', 'sign-in with an OpenID Connect provider'],
  ['phone.mjs', 'sign-up by SMS code (log provider)'],
  ['avatar.mjs', 'the avatar crop tool (drag, zoom, upload)'],
];

const chosen = process.argv.slice(2);
const scripts = chosen.length ? SCRIPTS.filter(([name]) => chosen.includes(name)) : SCRIPTS;
if (chosen.length && scripts.length !== chosen.length) {
  console.error(`unknown script among: ${chosen.join(' ')}`);
  process.exit(2);
}
const jobs = Math.max(1, Number(process.env.E2E_JOBS ?? 2) || 2);

const env = { ...process.env };
if (!env.SKEIN_BIN || !env.MOCK_BIN) {
  const target = env.CARGO_TARGET_DIR ?? join(repo, 'target');
  console.log('==> building skein and mock-upstream (debug) for the end-to-end scripts');
  // With the workspace's test targets selected, features resolve as for `cargo nextest run
  // --workspace` (dev-dependencies' features included), so after the test run both binaries
  // are already built; building them alone would resolve features differently and rebuild
  // half the workspace, twice per CI run.
  const built = spawnSync(
    'cargo',
    ['build', '--workspace', '--tests', '--bin', 'skein', '--bin', 'mock-upstream'],
    { cwd: repo, stdio: 'inherit' },
  );
  if (built.status !== 0) process.exit(built.status ?? 1);
  env.SKEIN_BIN ??= join(target, 'debug', 'skein');
  env.MOCK_BIN ??= join(target, 'debug', 'mock-upstream');
}

/** Runs one script; resolves with its exit code and output. */
function runScript(name) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(repo, 'web', 'e2e', name)], {
      cwd: join(repo, 'web'),
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = [];
    child.stdout.on('data', (d) => output.push(d));
    child.stderr.on('data', (d) => output.push(d));
    child.on('close', (code, signal) => {
      resolve({ code: code ?? (signal ? 1 : 0), secs: (Date.now() - started) / 1000, output: Buffer.concat(output) });
    });
  });
}

const failed = [];
const queue = [...scripts];
const started = Date.now();
async function worker() {
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [name, what] = next;
    const { code, secs, output } = await runScript(name);
    process.stdout.write(`\n==> web: ${what} (${name}, ${secs.toFixed(0)} s${code === 0 ? '' : `, FAILED with ${code}`})\n`);
    process.stdout.write(output);
    if (code !== 0) failed.push(name);
  }
}
await Promise.all(Array.from({ length: Math.min(jobs, scripts.length) }, worker));
const total = ((Date.now() - started) / 1000).toFixed(0);
if (failed.length) {
  console.error(`\nend-to-end: ${failed.length} of ${scripts.length} scripts failed (${total} s): ${failed.join(', ')}`);
  process.exit(1);
}
console.log(`\nend-to-end: all ${scripts.length} scripts passed in ${total} s, ${jobs} at a time`);
