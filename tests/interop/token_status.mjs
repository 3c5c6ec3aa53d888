// Token introspection (RFC 7662) and revocation (RFC 7009) at adieu through panva's
// `openid-client` (npm, version pinned in the lockfile), a client library adieu did not write.
//
// A resource server's client introspects the application's access and refresh tokens; the
// application's client revokes its refresh token; the resource server introspects again. Each
// answer, as openid-client parsed and checked it, is one JSON line on stdout:
//   {"step": "...", "active": true|false, ...claims}
// `crates/adieu/tests/e2e/token_status.rs` runs it and checks the lines.
//
// Usage:
//   node token_status.mjs --issuer URL --rs-id ID --rs-secret S --app-id ID --app-secret S
//                         --access-token T --refresh-token T

import * as client from 'openid-client';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: Object.fromEntries(
    ['issuer', 'rs-id', 'rs-secret', 'app-id', 'app-secret', 'access-token', 'refresh-token'].map((k) => [k, { type: 'string' }]),
  ),
});
for (const [k, v] of Object.entries(a)) if (!v) throw new Error(`token_status: missing --${k}`);

// adieu's development profile serves plain http on a loopback address.
const insecure = { execute: [client.allowInsecureRequests] };
const issuer = new URL(a.issuer);
const rs = await client.discovery(issuer, a['rs-id'], a['rs-secret'], client.ClientSecretBasic(a['rs-secret']), insecure);
const app = await client.discovery(issuer, a['app-id'], a['app-secret'], client.ClientSecretBasic(a['app-secret']), insecure);
const show = (step, r) => console.log(JSON.stringify({ step, ...r }));

show('access-before', await client.tokenIntrospection(rs, a['access-token']));
show('refresh-as-app', await client.tokenIntrospection(app, a['refresh-token'], { token_type_hint: 'refresh_token' }));
await client.tokenRevocation(app, a['refresh-token'], { token_type_hint: 'refresh_token' });
console.log(JSON.stringify({ step: 'revoked' }));
show('access-after', await client.tokenIntrospection(rs, a['access-token']));
show('refresh-after', await client.tokenIntrospection(app, a['refresh-token']));
