// A third-party OpenID Provider (panva/node-oidc-provider) for adieu's interoperability tests.
//
//   node op.mjs --port 0 --rp-base-url http://127.0.0.1:9001 [--client-id demo-rp] [--client-secret ...]
//
// (or OP_PORT, OP_RP_BASE_URL, OP_CLIENT_ID, OP_CLIENT_SECRET). Port 0 picks a free port. Once
// listening it prints one line `OP_ISSUER=<issuer>`; on every back-channel logout it attempted it
// prints `OP_BACKCHANNEL=success <client_id> <sid>` or `OP_BACKCHANNEL=error <client_id> <message>`.
// Those lines are the test's interface; everything else goes to stderr.
//
// Development settings only: any login and password signs in, the keys are made at start-up and the
// provider stores everything in memory.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'rp-base-url': { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
  },
});
const port = Number(args.port ?? process.env.OP_PORT ?? 0);
const rpBaseUrl = (args['rp-base-url'] ?? process.env.OP_RP_BASE_URL ?? '').replace(/\/$/, '');
const clientId = args['client-id'] ?? process.env.OP_CLIENT_ID ?? 'demo-rp';
const clientSecret = args['client-secret'] ?? process.env.OP_CLIENT_SECRET ?? 'demo-rp-interop-secret';
if (!Number.isInteger(port) || port < 0 || port > 65535 || !rpBaseUrl) {
  console.error('usage: node op.mjs --port <0..65535> --rp-base-url <http://127.0.0.1:port>');
  process.exit(2);
}
const rpOrigin = new URL(rpBaseUrl).origin;

// oidc-provider falls back to a published development key (and warns) when no `jwks` is given; a
// fresh RSA key per run keeps the test honest about key discovery. `kid` lets the RP pick the key.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'interop-rs256', use: 'sig', alg: 'RS256' };

async function start() {
  // The issuer must be known before the provider is built, so the port is reserved first; the
  // provider's Koa app is then served on that very server (no second bind, no race).
  const { createServer } = await import('node:http');
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [`${rpBaseUrl}/callback`],
        // The demo RP's sign-out sends `${base_url}/` as post_logout_redirect_uri.
        post_logout_redirect_uris: [`${rpBaseUrl}/`],
        backchannel_logout_uri: `${rpBaseUrl}/backchannel-logout`,
        backchannel_logout_session_required: true,
        id_token_signed_response_alg: 'RS256',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
    },
    // Any login is accepted (devInteractions does not check the password); the account id is the
    // login, and the claims make the demo RP's profile page show it.
    async findAccount(_ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return { sub, preferred_username: sub, name: sub, email: `${sub}@example.test`, email_verified: true };
        },
      };
    },
    // The demo RP always sends S256 PKCE; require it so the test would catch a regression there.
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    // oidc-provider 9 sends its outgoing requests (back-channel logout among them) through an undici
    // dispatcher that refuses special-use addresses, loopback included, to prevent SSRF. The demo RP
    // is on 127.0.0.1, so requests to exactly its origin go through the default dispatcher; any other
    // destination keeps the protection.
    fetch(url, options) {
      if (new URL(url).origin === rpOrigin) {
        const { dispatcher: _ssrfGuard, ...rest } = options;
        return globalThis.fetch(url, rest);
      }
      return globalThis.fetch(url, options);
    },
  });

  provider.on('backchannel.success', (_ctx, client, _accountId, sid) => {
    console.log(`OP_BACKCHANNEL=success ${client.clientId} ${sid}`);
  });
  provider.on('backchannel.error', (_ctx, err, client) => {
    console.log(`OP_BACKCHANNEL=error ${client.clientId} ${String(err?.message ?? err).replace(/\s+/g, ' ')}`);
  });
  for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error', 'userinfo.error']) {
    provider.on(event, (_ctx, err) => console.error(`oidc-provider ${event}:`, err));
  }

  server.on('request', provider.callback());
  console.log(`OP_ISSUER=${issuer}`);
}

// The test harness kills the process; exit cleanly on the usual signals too.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}

start().catch((err) => {
  console.error(err);
  process.exit(1);
});
