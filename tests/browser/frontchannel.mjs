// Front-Channel Logout 1.0 in headless Chromium, with the provider's Content Security Policy in
// force. This script runs a small application of its own, one the provider has no back channel to:
// it signs in with the code flow (public client, PKCE), keeps its own cookie session keyed by the
// ID token's `sid`, and ends that session when its front-channel logout URI is loaded with the
// provider's `iss` and that `sid`.
//
//   1. sign in to the application: its page says "Signed in as" the user's sub;
//   2. sign out at the provider's own /logout: the signed-out page loads the application's frame,
//      the application gets `iss`, `sid` (and its own query, kept), the badge turns "Signed out",
//      and the application's page then says "Not signed in";
//   3. sign in again and sign out from the application (id_token_hint, post_logout_redirect_uri,
//      state): the provider loads the frame first, then sends the browser back with `state`;
//   4. axe-core audits the consent screen, the account page listing the allowed application, the
//      sign-out confirmation and a signed-out page holding a frame, in four languages and both
//      colour schemes;
//   5. a frame that never loads: after the bounded wait the application is "Could not be told".
//
// Usage:
//   node frontchannel.mjs --provider URL --client-id ID --rp-port PORT --username NAME --password PW
//                         [--out DIR] [--chromium PATH]
// `crates/adieu/tests/browser/frontchannel.rs` starts `adieu serve` and runs this script.
// Exits 0 when every step passed, 1 with a message naming the failed step.

import { chromium } from 'playwright-core';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { axeBothSchemes, openInLanguage } from './axe.mjs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    provider: { type: 'string' },
    'client-id': { type: 'string' },
    'rp-port': { type: 'string' },
    username: { type: 'string' },
    password: { type: 'string' },
    out: { type: 'string' },
    chromium: { type: 'string' },
  },
});
for (const key of ['provider', 'client-id', 'rp-port', 'username', 'password']) {
  if (!args[key]) {
    console.error(`frontchannel: missing --${key}`);
    process.exit(2);
  }
}
const provider = args.provider.replace(/\/+$/, '');
const rp = `http://127.0.0.1:${args['rp-port']}`;
const out = resolve(args.out ?? 'browser-frontchannel');
mkdirSync(out, { recursive: true });
const TIMEOUT_MS = 20_000;

let step = '(start)';
const fail = (message) => {
  throw new Error(message);
};

// ---- The application -------------------------------------------------------------------------

const discovery = await (await fetch(`${provider}/.well-known/openid-configuration`)).json();
const pending = new Map(); // state -> PKCE verifier
const sessions = new Map(); // cookie value -> { user, sid, idToken }
const frontChannelHits = []; // the query of every front-channel request
let hang = false; // step 5: the front-channel page never answers
const hung = [];
const random = () => randomBytes(16).toString('base64url');
const page = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`<!doctype html><html lang="en"><head><title>Browser-only App</title></head><body><main>${body}</main></body></html>`);
};
const cookieOf = (req) => /(?:^|;\s*)rp=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

async function callback(u, res) {
  const verifier = pending.get(u.searchParams.get('state'));
  pending.delete(u.searchParams.get('state'));
  if (!verifier) return page(res, 400, '<h1>Unknown state</h1>');
  const body = new URLSearchParams({
    grant_type: 'authorization_code', code: u.searchParams.get('code') ?? '', redirect_uri: `${rp}/callback`,
    client_id: args['client-id'], code_verifier: verifier,
  });
  const answer = await fetch(discovery.token_endpoint, { method: 'POST', body });
  if (!answer.ok) return page(res, 502, `<h1>Token request failed: ${answer.status}</h1>`);
  // The ID token comes straight from the token endpoint, so its claims are read as they are.
  const tokens = await answer.json();
  const claims = claimsOf(tokens.id_token);
  if (claims.iss !== provider || claims.aud !== args['client-id'] || !claims.sid) {
    return page(res, 502, '<h1>Unexpected ID token</h1>');
  }
  const id = random();
  sessions.set(id, { user: claims.sub, sid: claims.sid, idToken: tokens.id_token });
  res.writeHead(303, { location: '/', 'set-cookie': `rp=${id}; Path=/; HttpOnly; SameSite=Lax` });
  res.end();
}

function home(req, res) {
  const s = sessions.get(cookieOf(req));
  if (!s) return page(res, 200, '<h1>Not signed in</h1><p><a href="/login">Sign in</a></p>');
  const q = new URLSearchParams({ id_token_hint: s.idToken, post_logout_redirect_uri: `${rp}/bye`, state: 'bye-1' });
  return page(res, 200, `<h1>Signed in as ${s.user}</h1><p><a id="signout" href="${discovery.end_session_endpoint}?${q}">Sign out</a></p>`);
}

function frontChannel(u, res) {
  frontChannelHits.push(Object.fromEntries(u.searchParams));
  if (hang) return hung.push(res);
  // FCL §4: the issuer must be ours, and the sid names the session to end.
  if (u.searchParams.get('iss') === provider) {
    for (const [id, s] of sessions) if (s.sid === u.searchParams.get('sid')) sessions.delete(id);
  }
  return page(res, 200, '<p>Signed out</p>');
}

const server = http.createServer((req, res) => {
  const u = new URL(req.url, rp);
  if (u.pathname === '/login') {
    const state = random(), verifier = random() + random();
    pending.set(state, verifier);
    const q = new URLSearchParams({
      response_type: 'code', client_id: args['client-id'], redirect_uri: `${rp}/callback`, scope: 'openid profile', state,
      nonce: random(), code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    });
    res.writeHead(303, { location: `${discovery.authorization_endpoint}?${q}` });
    return res.end();
  }
  if (u.pathname === '/callback') return callback(u, res).catch((e) => page(res, 500, `<h1>${e.message}</h1>`));
  if (u.pathname === '/frontchannel') return frontChannel(u, res);
  if (u.pathname === '/bye') return page(res, 200, `<h1>Signed out of the application</h1><p id="state">${u.searchParams.get('state')}</p>`);
  if (u.pathname === '/') return home(req, res);
  return page(res, 404, '<h1>Not found</h1>');
});
await new Promise((ok) => server.listen(Number(args['rp-port']), '127.0.0.1', ok));

// ---- The browser ------------------------------------------------------------------------------

async function audit(page, what) {
  for (const { scheme, violations, passes } of await axeBothSchemes(page)) {
    if (violations.length) fail(`axe-core found ${violations.length} violation(s) on ${what} (${scheme}):\n${violations.join('\n')}`);
    console.log(`  axe-core: ${what} (${scheme}): ${passes} rules passed`);
  }
}

// The application is third-party: the first sign-in asks for consent (audited in each language
// before it is allowed); later ones do not ask again.
let consentSeen = false;
// The address `url` (a GET page) in English, German, French and Spanish, each audited like
// `audit`, in a context of its own that lets axe-core in (bypassCSP) and has `from`'s cookies.
async function auditLanguages(from, url, what, prefix) {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 }, bypassCSP: true });
  await context.addCookies(await from.cookies());
  for (const lang of ['en', 'de', 'fr', 'es']) {
    const view = await openInLanguage(context, url, lang);
    await audit(view, `${what} (${lang})`);
    await view.screenshot({ path: join(out, `${prefix}-${lang}.png`), fullPage: true });
    await view.close();
  }
  await context.close();
}

async function signIn(p) {
  current = p;
  await p.goto(`${rp}/login`);
  await p.getByLabel('Username or email').fill(args.username);
  await p.getByLabel('Password').fill(args.password);
  await p.getByRole('button', { name: 'Sign in' }).click();
  if (!consentSeen) {
    await p.getByRole('button', { name: 'Allow' }).waitFor();
    consentSeen = true;
    await auditLanguages(p.context(), p.url(), 'the consent screen', '29-consent');
    await p.getByRole('button', { name: 'Allow' }).click();
  }
  await p.getByText('Signed in as').waitFor();
  const [s] = [...sessions.values()].slice(-1);
  return s.sid;
}

function expectHit(n, sid) {
  if (frontChannelHits.length !== n) fail(`the application got ${frontChannelHits.length} front-channel requests, not ${n}`);
  const hit = frontChannelHits[n - 1];
  if (hit.iss !== provider) fail(`front-channel iss is ${JSON.stringify(hit.iss)}, not ${provider}`);
  if (hit.sid !== sid) fail(`front-channel sid is ${JSON.stringify(hit.sid)}, not the ID token's ${sid}`);
  if (hit.tenant !== 't1') fail('the front-channel URI lost its own query (tenant=t1)');
}

let browser;
let current; // the page in use, for the failure's screenshot
let exitCode = 0;
try {
  browser = await chromium.launch({
    executablePath: args.chromium ?? '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // No bypassCSP: the signed-out page's own policy must let its script run and its frame load.
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  const tab = await context.newPage();
  const blocked = [];
  tab.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) blocked.push(m.text());
  });

  step = '1. sign in to the application';
  const sid = await signIn(tab);
  await tab.screenshot({ path: join(out, '30-app-signed-in.png'), fullPage: true });
  await auditLanguages(context, `${provider}/account`, 'the account page with an allowed application', '30-account');
  await auditLanguages(context, `${provider}/logout`, 'the sign-out confirmation', '30-logout-confirm');

  step = '2. sign out at the provider: the frame tells the application';
  await tab.goto(`${provider}/logout`);
  await tab.getByRole('button', { name: 'Sign out' }).click();
  await tab.getByText('You are signed out').waitFor();
  await tab.locator('ul.apps li .badge.ok', { hasText: 'Signed out' }).waitFor();
  await tab.getByText('Every application has been told through this browser').waitFor();
  await tab.screenshot({ path: join(out, '31-provider-signed-out.png'), fullPage: true });
  expectHit(1, sid);
  if (blocked.length) fail(`the browser blocked something on the signed-out page:\n${blocked.join('\n')}`);
  await tab.goto(rp);
  await tab.getByText('Not signed in').waitFor();
  await tab.screenshot({ path: join(out, '32-app-signed-out.png'), fullPage: true });

  step = '3. sign out from the application: frame first, then back with state';
  const sid2 = await signIn(tab);
  if (sid2 === sid) fail('the new session has the old sid');
  // The hint names the provider's session, so the provider asks nothing.
  await tab.locator('#signout').click();
  await tab.waitForURL(`${rp}/bye?state=bye-1`);
  expectHit(2, sid2);
  await tab.screenshot({ path: join(out, '33-app-bye.png'), fullPage: true });
  await tab.goto(rp);
  await tab.getByText('Not signed in').waitFor();
  if (blocked.length) fail(`the browser blocked something:\n${blocked.join('\n')}`);

  step = '4. a signed-out page with a frame passes axe-core, in each language';
  let hits = 2;
  for (const [lang, signOut, told] of [
    ['en', 'Sign out', 'Signed out'],
    ['de', 'Abmelden', 'Abgemeldet'],
    ['fr', 'Se déconnecter', 'Déconnecté'],
    ['es', 'Cerrar sesión', 'Sesión cerrada'],
  ]) {
    const auditing = await browser.newContext({ viewport: { width: 900, height: 640 }, bypassCSP: true });
    auditing.setDefaultTimeout(TIMEOUT_MS);
    const view = await auditing.newPage();
    await view.setExtraHTTPHeaders({ 'Accept-Language': 'en' });
    const sid3 = await signIn(view);
    await view.setExtraHTTPHeaders({ 'Accept-Language': lang });
    await view.goto(`${provider}/logout`);
    await view.getByRole('button', { name: signOut, exact: true }).click();
    await view.locator('ul.apps li .badge.ok', { hasText: told }).waitFor();
    expectHit(++hits, sid3);
    await audit(view, `the signed-out page with a front-channel frame (${lang})`);
    await view.screenshot({ path: join(out, `35-signed-out-${lang}.png`), fullPage: true });
    await auditing.close();
  }

  step = '5. a frame that never loads is given up on after the bounded wait';
  hang = true;
  const sid4 = await signIn(tab);
  await tab.goto(`${provider}/logout`);
  await tab.getByRole('button', { name: 'Sign out' }).click();
  await tab.getByText('Being told in this browser').waitFor();
  await tab.locator('ul.apps li .badge.failed', { hasText: 'Could not be told' }).waitFor();
  await tab.getByText('Some applications could not be told through this browser').waitFor();
  expectHit(hits + 1, sid4);
  await tab.screenshot({ path: join(out, '34-provider-could-not-tell.png'), fullPage: true });
  console.log('frontchannel: every step passed');
} catch (e) {
  console.error(`frontchannel: step "${step}" failed: ${e.message}`);
  if (current) {
    console.error(`  at ${current.url()}: ${(await current.locator('body').innerText().catch(() => '')).slice(0, 500)}`);
    await current.screenshot({ path: join(out, '99-failure.png'), fullPage: true }).catch(() => {});
  }
  exitCode = 1;
} finally {
  await browser?.close();
  hung.forEach((r) => r.destroy());
  server.close();
}
process.exit(exitCode);
