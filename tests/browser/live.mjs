// The signed-out page updating itself in headless Chromium, with the provider's Content Security
// Policy in force: sign in to one application whose back-channel endpoint answers slowly, sign out at
// the provider, and the page first says the application is being told, then, without a reload, that
// it is signed out. axe-core then audits the sign-out's status page in both colour schemes.
//
// Usage:
//   node live.mjs --provider URL --client-id ID --redirect-uri URI --username NAME --password PW
//                 [--out DIR] [--chromium PATH]
// `crates/adieu/tests/browser.rs` starts `adieu serve` and a slow receiver and runs this script.
// Exits 0 when every step passed, 1 with a message naming the failed step.

import { chromium } from 'playwright-core';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { axeBothSchemes, openInLanguage } from './axe.mjs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    provider: { type: 'string' },
    'client-id': { type: 'string' },
    'redirect-uri': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    out: { type: 'string' },
    chromium: { type: 'string' },
  },
});
for (const key of ['provider', 'client-id', 'redirect-uri', 'username', 'password']) {
  if (!args[key]) {
    console.error(`live: missing --${key}`);
    process.exit(2);
  }
}
const provider = args.provider.replace(/\/+$/, '');
const out = resolve(args.out ?? 'browser-tour');
mkdirSync(out, { recursive: true });
const TIMEOUT_MS = 20_000;

let step = '(start)';
const fail = (message) => {
  throw new Error(message);
};

async function audit(page, what) {
  for (const { scheme, violations, passes } of await axeBothSchemes(page)) {
    if (violations.length) fail(`axe-core found ${violations.length} violation(s) on ${what} (${scheme}):\n${violations.join('\n')}`);
    console.log(`  axe-core: ${what} (${scheme}): ${passes} rules passed`);
  }
}

const badgeOf = (page) => page.locator('ul.apps li .badge').first();

let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: args.chromium ?? '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // No bypassCSP here: the page's own policy must let its script run and fetch.
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  // Sign-in in one tab; its last navigation (to the test's receiver, which is no web page and
  // answers slowly) may still be going on when the sign-out starts, so that runs in a tab of its
  // own (the same browser context: the same cookies).
  const signIn = await context.newPage();

  step = '1. sign in at the provider';
  const verifier = 'v'.repeat(43);
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({
    response_type: 'code', client_id: args['client-id'], redirect_uri: args['redirect-uri'], scope: 'openid',
    state: 'live', nonce: 'live', code_challenge: challenge, code_challenge_method: 'S256',
  });
  await signIn.goto(`${provider}/authorize?${q}`);
  await signIn.getByLabel('Username or email').fill(args.username);
  await signIn.getByLabel('Password').fill(args.password);
  // The redirect URI is the test's receiver, which is no web page: the request to it is enough (the
  // provider's session cookie is set by then).
  const back = signIn.waitForRequest((r) => r.url().startsWith(args['redirect-uri']), { timeout: TIMEOUT_MS });
  await signIn.getByRole('button', { name: 'Sign in' }).click();
  const code = new URL((await back).url()).searchParams.get('code');
  if (!code) fail('the provider did not send a code back to the application');

  step = '2. sign out at the provider: the application is being told';
  const page = await context.newPage();
  const blocked = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) blocked.push(m.text());
  });
  await page.goto(`${provider}/logout`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out').waitFor();
  const first = await badgeOf(page).innerText();
  if (!first.startsWith('Being told')) fail(`the slow application's badge says "${first}", not "Being told"`);
  await page.screenshot({ path: join(out, '20-live-being-told.png'), fullPage: true });
  const url = page.url();

  step = '3. the badge turns to "Signed out" without a reload';
  await page.locator('ul.apps li .badge.ok', { hasText: 'Signed out' }).waitFor({ timeout: TIMEOUT_MS });
  if (page.url() !== url) fail(`the page navigated (${url} -> ${page.url()}) instead of updating itself`);
  await page.getByText('Every application has now been told').waitFor();
  await page.screenshot({ path: join(out, '21-live-signed-out.png'), fullPage: true });
  if (blocked.length) fail(`the browser blocked something on the signed-out page:\n${blocked.join('\n')}`);

  step = '4. the status page (as without JavaScript) passes axe-core';
  const status = await page.locator('#live-note').count();
  if (status !== 1) fail('the live note is missing');
  const link = await page.evaluate(() => document.getElementById('live-note').dataset.status);
  const auditing = await browser.newContext({ viewport: { width: 900, height: 640 }, bypassCSP: true });
  const view = await auditing.newPage();
  await view.goto(`${provider}${link}`);
  await view.getByText('You are signed out').waitFor();
  await audit(view, "a sign-out's status page");
  for (const lang of ['de', 'fr', 'es']) {
    const other = await openInLanguage(auditing, `${provider}${link}`, lang);
    await audit(other, `a sign-out's status page (${lang})`);
    await other.screenshot({ path: join(out, `22-status-${lang}.png`), fullPage: true });
    await other.close();
  }
  await page.emulateMedia({ colorScheme: 'light' });
  console.log('live: every step passed');
} catch (e) {
  console.error(`live: step "${step}" failed: ${e.message}`);
  exitCode = 1;
} finally {
  await browser?.close();
}
process.exit(exitCode);
