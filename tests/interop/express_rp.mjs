// An application adieu did not write: express (npm) with auth0's express-openid-connect and its
// back-channel logout (versions pinned in the lockfile), signed in through adieu. It serves until
// killed and prints `RP_READY <base URL>` once it listens. `adieu check-rp` is run against it by
// `crates/adieu/tests/e2e/check_rp.rs`.
//
// Usage: node express_rp.mjs --port N --issuer URL --client-id ID --client-secret S

import express from 'express';
import eoc from 'express-openid-connect';
import session from 'express-session';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: Object.fromEntries(['port', 'issuer', 'client-id', 'client-secret'].map((k) => [k, { type: 'string' }])),
});
for (const [k, v] of Object.entries(a)) if (!v) throw new Error(`express_rp: missing --${k}`);
const baseURL = `http://127.0.0.1:${a.port}`;
const store = new session.MemoryStore();
const app = express();
app.use(
  eoc.auth({
    issuerBaseURL: a.issuer,
    baseURL,
    clientID: a['client-id'],
    clientSecret: a['client-secret'],
    secret: 'a-long-random-secret-for-the-interop-test-only-0123456789',
    authRequired: false,
    idpLogout: false,
    authorizationParams: { response_type: 'code', scope: 'openid' },
    // A stateful session store, which Back-Channel Logout requires.
    session: { store },
    backchannelLogout: true,
  }),
);
app.get('/', (req, res) => res.send(req.oidc.isAuthenticated() ? 'signed in' : 'signed out'));
app.listen(Number(a.port), '127.0.0.1', () => console.log(`RP_READY ${baseURL}`));
