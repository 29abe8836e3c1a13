// An OpenID Connect provider for the gate's tests: node-oidc-provider with its own
// sign-in and consent pages, the clients and accounts the test gives it, PKCE required.
//
// Usage: OIDC_TEST_CONFIG='{"clients": [...], "accounts": {...}}' node provider.mjs
// It listens on a free port of 127.0.0.1 and prints one line, {"issuer": "http://…"},
// once it answers.
import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const { clients, accounts } = JSON.parse(process.env.OIDC_TEST_CONFIG);

function findAccount(_ctx, id) {
  const account = accounts[id];
  if (!account) return undefined;
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...account };
    },
  };
}

const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const jwk = { ...key.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    findAccount,
    jwks: { keys: [jwk] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});
