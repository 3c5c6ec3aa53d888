// The README's `adieu demo` tour in headless Chromium: sign in to App A through the provider's sign-in
// page, open App B (single sign-on), sign out of App A (RP-initiated logout through the provider's
// /logout), and App B's page shows the user signed out because B was told over the back channel.
//
// Usage:
//   node tour.mjs --provider URL --app-a URL --app-b URL --username NAME --password PW [--out DIR]
// Each option can also come from the environment: TOUR_PROVIDER, TOUR_APP_A, TOUR_APP_B,
// TOUR_USERNAME, TOUR_PASSWORD, TOUR_OUT, TOUR_CHROMIUM (default /usr/bin/chromium).
// `crates/adieu/tests/browser.rs` starts `adieu demo` and runs this script; it can also be pointed at
// a demo started by hand. Exits 0 when every step passed, 1 with a message naming the failed step.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { axeBothSchemes, openInLanguage } from './axe.mjs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    provider: { type: 'string' },
    'app-a': { type: 'string' },
    'app-b': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    out: { type: 'string' },
    chromium: { type: 'string' },
  },
});
const env = process.env;
const opt = (name, envName, fallback) => args[name] ?? env[envName] ?? fallback;
const config = {
  provider: opt('provider', 'TOUR_PROVIDER'),
  appA: opt('app-a', 'TOUR_APP_A'),
  appB: opt('app-b', 'TOUR_APP_B'),
  username: opt('username', 'TOUR_USERNAME'),
  password: opt('password', 'TOUR_PASSWORD'),
  out: resolve(opt('out', 'TOUR_OUT', 'browser-tour')),
  chromium: opt('chromium', 'TOUR_CHROMIUM', '/usr/bin/chromium'),
};
for (const [key, value] of Object.entries(config)) {
  if (!value) {
    console.error(`tour: missing --${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())} (see the usage at the top of tour.mjs)`);
    process.exit(2);
  }
}
const trim = (u) => u.replace(/\/+$/, '');
const provider = trim(config.provider);
const appA = trim(config.appA);
const appB = trim(config.appB);

// Generous: the provider hashes passwords with Argon2, and CI machines are small and busy.
const STEP_TIMEOUT_MS = 20_000;

class StepFailure extends Error {}
let step = '(start)';
const fail = (message) => {
  throw new StepFailure(message);
};
const expect = (cond, message) => {
  if (!cond) fail(message);
};

mkdirSync(config.out, { recursive: true });
const shots = [];
async function shot(page, name) {
  const path = join(config.out, name);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
}

// Waits for visible text on the page. Locators survive the demo pages' 3-second meta refresh, which
// a one-off read of the body would race against.
async function seeText(page, text, what) {
  try {
    await page.getByText(text).first().waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  } catch {
    const body = await page
      .locator('body')
      .innerText({ timeout: 2_000 })
      .catch(() => '(unreadable)');
    fail(`${what}: expected the text "${text}" at ${page.url()}, the page shows:\n${body}`);
  }
}

// axe-core (WCAG 2.0, 2.1 and 2.2, levels A and AA) on the provider's page as it is now, in the light
// and the dark colour scheme. Every violation is a failure naming the rule, the elements and the page.
const audited = [];
async function auditHere(page, what, lang) {
  for (const { scheme, violations, passes } of await axeBothSchemes(page)) {
    expect(violations.length === 0, `axe-core found ${violations.length} violation(s) on ${what} (${lang}, ${scheme}, ${page.url()}):\n${violations.join('\n')}`);
    audited.push(`${what} (${lang}, ${scheme}): ${passes} rules passed`);
  }
}

// The page as it is now (English), then the same address in German, French and Spanish
// (Accept-Language, in a tab of its own so the page in use keeps what was typed into it): each
// must say it is in that language (<html lang>) and pass axe-core in both colour schemes.
const LANGUAGES = ['de', 'fr', 'es'];
async function audit(page, what) {
  await auditHere(page, what, 'en');
  for (const lang of LANGUAGES) {
    let view;
    try {
      view = await openInLanguage(page.context(), page.url(), lang);
    } catch (e) {
      fail(`${what}: ${e.message}`);
    }
    try {
      await auditHere(view, what, lang);
      const slug = what.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
      await shot(view, `lang-${lang}-${slug}.png`);
    } finally {
      await view.close();
    }
  }
}

// Waits until the page's URL passes `test`; on a timeout the message names where the browser got
// stuck and what that page says (an error page of the provider, typically).
async function arrive(page, test, what) {
  try {
    await page.waitForURL(test, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const body = await page
      .locator('body')
      .innerText({ timeout: 2_000 })
      .catch(() => '(unreadable)');
    fail(`${what}: the browser stayed at ${page.url()}, which shows:\n${body}`);
  }
}

// Every URL the main frame navigated to, redirects included, so a step can prove which pages of the
// provider it went through even when they only redirect.
function trackNavigations(page) {
  const urls = [];
  page.on('request', (req) => {
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) urls.push(req.url());
  });
  return {
    since() {
      const start = urls.length;
      return () => urls.slice(start);
    },
  };
}

let browser;
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: config.chromium,
    // Playwright adds --headless and starts each launch on a new, empty profile directory (it refuses a
    // --user-data-dir here). Some of these it passes itself; listing them all keeps Chromium from calling
    // out of a closed network even if its defaults change.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    headless: true,
    timeout: 60_000,
  });
  // bypassCSP: the provider's pages allow no script, and axe-core is injected as one.
  const context = await browser.newContext({ viewport: { width: 900, height: 640 }, bypassCSP: true });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const tabA = await context.newPage();
  const navA = trackNavigations(tabA);

  step = '1. App A sends the browser to the provider to sign in';
  await tabA.goto(`${appA}/`);
  await seeText(tabA, 'You are signed out', 'App A before signing in');
  await tabA.getByRole('link', { name: 'Sign in' }).click();
  await arrive(tabA, (u) => u.href.startsWith(`${provider}/login`), "App A's sign-in link should lead to the provider's /login");
  await seeText(tabA, 'Sign in to App A', "the provider's sign-in page");
  await tabA.getByLabel('Username or email').fill(config.username);
  await tabA.getByLabel('Password').fill(config.password);
  await shot(tabA, '01-a-signin.png');
  await audit(tabA, "the provider's sign-in page");

  step = '2. signed in to App A';
  await tabA.getByRole('button', { name: 'Sign in' }).click();
  await arrive(
    tabA,
    (u) => u.href.startsWith(`${appA}/`) && !u.pathname.startsWith('/callback'),
    'after the sign-in form the browser should be back at App A',
  );
  await seeText(tabA, `You are signed in as ${config.username}`, 'App A after signing in');
  expect((await tabA.locator('#user').innerText()) === config.username, `App A shows the wrong user`);
  await shot(tabA, '02-a-signed-in.png');

  // App B in its own tab, kept open to the end: the README says its page notices the logout.
  step = '3. App B signs in without a password (single sign-on)';
  const tabB = await context.newPage();
  const navB = trackNavigations(tabB);
  await tabB.goto(`${appB}/`);
  await seeText(tabB, 'You are signed out', 'App B before signing in');
  const signInB = navB.since();
  await tabB.getByRole('link', { name: 'Sign in' }).click();
  await arrive(
    tabB,
    (u) => u.href.startsWith(`${appB}/`) && !['/login', '/callback'].includes(u.pathname),
    'App B\'s sign-in should come back to App B',
  );
  await seeText(tabB, `You are signed in as ${config.username}`, 'App B after single sign-on');
  const viaB = signInB();
  expect(
    viaB.some((u) => u.startsWith(`${provider}/authorize`)),
    `App B's sign-in did not go through the provider's /authorize; navigations: ${viaB.join(' -> ')}`,
  );
  expect(
    !viaB.some((u) => u.startsWith(`${provider}/login`)),
    `single sign-on expected, but the provider showed its sign-in page again; navigations: ${viaB.join(' -> ')}`,
  );
  await shot(tabB, '03-b-signed-in.png');

  step = '4. sign out of App A (RP-initiated logout through the provider)';
  await tabA.bringToFront();
  await tabA.goto(`${appA}/`);
  await seeText(tabA, `You are signed in as ${config.username}`, 'App A still has its own session');
  await shot(tabA, '04-a-before-signout.png');
  const signOutA = navA.since();
  await tabA.getByRole('button', { name: 'Sign out' }).click();
  await arrive(
    tabA,
    (u) => u.href.startsWith(`${appA}/`) && u.searchParams.has('state'),
    'after the provider\'s /logout the browser should be back at App A with a state',
  );
  await seeText(tabA, 'You are signed out', 'App A after signing out');
  const viaA = signOutA();
  expect(
    viaA.some((u) => u.startsWith(`${provider}/logout`)),
    `App A's sign-out did not go through the provider's /logout; navigations: ${viaA.join(' -> ')}`,
  );
  await shot(tabA, '05-a-signed-out.png');

  step = "5. App B's page shows the user signed out (back-channel logout)";
  await tabB.bringToFront();
  // No reload by the test first: App B's page refreshes itself every 3 seconds, as the README says.
  await seeText(tabB, 'You are signed out', 'App B after the logout at App A (its own refresh)');
  await tabB.reload();
  await seeText(tabB, 'You are signed out', 'App B after a reload');
  expect((await tabB.locator('#user').count()) === 0, 'App B still names a signed-in user');
  await shot(tabB, '06-b-signed-out.png');

  step = "6. the provider's other pages pass axe-core";
  const tabP = await context.newPage();
  for (const [path, what, file] of [
    ['/', "the provider's start page (signed out)", '07-provider-home.png'],
    ['/no/such/page', "the provider's page for an unknown address", '08-provider-404.png'],
    ['/authorize', "the provider's error page (a sign-in request without an application)", '10-provider-error.png'],
    ['/logout', "the provider's sign-out page (signed out already)", '11-provider-logout.png'],
  ]) {
    await tabP.goto(`${provider}${path}`);
    await shot(tabP, file);
    await audit(tabP, what);
  }
  await tabP.emulateMedia({ colorScheme: 'dark' });
  await tabP.goto(`${provider}/no/such/page`);
  await shot(tabP, '09-provider-404-dark.png');
  await tabP.emulateMedia({ colorScheme: 'light' });

  step = "7. signed in at the provider itself, its start and account pages pass axe-core";
  await tabP.goto(`${provider}/login`);
  await tabP.getByLabel('Username or email').fill(config.username);
  await tabP.getByLabel('Password').fill(config.password);
  await tabP.getByRole('button', { name: 'Sign in' }).click();
  await seeText(tabP, config.username, "the provider's start page after a plain sign-in");
  await audit(tabP, "the provider's start page (signed in)");
  await tabP.goto(`${provider}/account`);
  await seeText(tabP, 'Your account', 'the account page');
  await shot(tabP, '12-provider-account.png');
  await audit(tabP, 'the account page');
  await tabP.emulateMedia({ colorScheme: 'dark' });
  await shot(tabP, '13-provider-account-dark.png');
  await tabP.emulateMedia({ colorScheme: 'light' });

  step = '8. "Sign out everywhere" on the account page signs App B out too (session-revoked)';
  await tabB.bringToFront();
  await tabB.goto(`${appB}/`);
  await seeText(tabB, 'You are signed out', 'App B before signing in again');
  await tabB.getByRole('link', { name: 'Sign in' }).click();
  await arrive(
    tabB,
    (u) => u.href.startsWith(`${appB}/`) && !['/login', '/callback'].includes(u.pathname),
    'App B\'s second sign-in should come back to App B (single sign-on with the provider session)',
  );
  await seeText(tabB, `You are signed in as ${config.username}`, 'App B signed in again');
  await tabP.bringToFront();
  await tabP.goto(`${provider}/account`);
  await seeText(tabP, 'Tells App B', 'the account page names App B as told by "Sign out everywhere"');
  await tabP.getByRole('button', { name: 'Sign out everywhere' }).click();
  await seeText(tabP, 'You are signed out everywhere', 'the page after "Sign out everywhere"');
  await seeText(tabP, 'Being told: App B', 'the page names App B as being told');
  await shot(tabP, '14-provider-signed-out-everywhere.png');
  await tabB.bringToFront();
  await seeText(tabB, 'You are signed out', 'App B after "Sign out everywhere" (its own refresh)');
  expect((await tabB.locator('#user').count()) === 0, 'App B still names a signed-in user');
  await shot(tabB, '15-b-signed-out-everywhere.png');

  console.log('tour: all 8 steps passed');
  for (const a of audited) console.log(`  axe-core: ${a}`);
} catch (e) {
  exitCode = 1;
  const message = e instanceof StepFailure ? e.message : (e && e.stack) || String(e);
  console.error(`tour: FAILED at step "${step}":\n${message}`);
  if (browser) {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) {
      await shot(p, `failure-tab${i + 1}.png`).catch(() => {});
    }
  }
} finally {
  await browser?.close().catch(() => {});
}
console.log(`tour: ${shots.length} screenshot(s) in ${config.out}`);
for (const s of shots) console.log(`  ${s}`);
// Not process.exit(): it can cut off output still queued for a pipe.
process.exitCode = exitCode;
