// A real OpenID Connect provider on loopback for the sign-in tests: npm's oauth2-mock-server
// (discovery, JWKS, authorization code with PKCE, RS256 ID tokens carrying the nonce), started
// through its library API so two test needs can be met with its documented hooks:
//
// - who signs in: the authorization request's `login_hint` (an address) becomes the ID token's
//   `sub` ("user:<address>"), `email` and `email_verified: true`, as a real provider reports
//   the person who typed their password there;
// - an ID token for another audience: a token request from the client id
//   `skein-other-audience` gets `aud: "someone-else"`, as a token minted for another app would.
//
// Usage: OAUTH2_MOCK_SERVER=<dir of the package> node scripts/oidc-mock.mjs PORT
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const port = Number(process.argv[2] || 8089);
const pkg = process.env.OAUTH2_MOCK_SERVER;
if (!pkg) {
  console.error('set OAUTH2_MOCK_SERVER to the oauth2-mock-server package directory');
  process.exit(2);
}
const { OAuth2Server } = await import(pathToFileURL(path.join(pkg, 'dist/index.mjs')).href);

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

const hints = new Map();
server.service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const url = new URL(req.url, 'http://localhost');
  const hint = url.searchParams.get('login_hint');
  const code = redirect.url.searchParams.get('code');
  if (hint && code) hints.set(code, hint);
});
server.service.on('beforeTokenSigning', (token, req) => {
  const body = req.body || {};
  const basic = (req.headers.authorization || '').replace(/^Basic\s+/i, '');
  const clientId = basic
    ? decodeURIComponent(Buffer.from(basic, 'base64').toString().split(':')[0].replace(/\+/g, ' '))
    : body.client_id;
  const hint = body.code && hints.get(body.code);
  if (hint && token.payload.nonce !== undefined) {
    // The ID token (the one that carries the nonce); the code is then spent.
    hints.delete(body.code);
  }
  if (hint) {
    token.payload.sub = `user:${hint}`;
    token.payload.email = hint;
    token.payload.email_verified = true;
    token.payload.name = hint.split('@')[0];
  }
  if (clientId === 'skein-other-audience') token.payload.aud = 'someone-else';
});

await server.start(port, '127.0.0.1');
// The issuer names the address it listens on (not "localhost", which may resolve to ::1).
server.issuer.url = `http://127.0.0.1:${port}`;
console.log(`oidc mock issuer ${server.issuer.url}`);
