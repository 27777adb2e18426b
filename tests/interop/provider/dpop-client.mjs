// A DPoP client built with panva's `dpop` package (not ours), for validate-jwt's interop tests.
//
//   node dpop-client.mjs <provider URL> <resource> <htu> [alg]
//
// Generates a key pair (`alg`: ES256 by default, or Ed25519, RS256, PS256), gets a DPoP-bound
// access token from the provider (`client_credentials`, a proof on the token request), then
// prints one JSON line on stdout: the token response plus `proofs`, three fresh proofs for
// `GET <htu>` with that token (`ath`), each with its own `jti`.

import { generateKeyPair, generateProof } from 'dpop';

const [providerUrl, resource, htu, alg = 'ES256'] = process.argv.slice(2);
if (!providerUrl || !resource || !htu) {
  console.error('usage: node dpop-client.mjs <provider URL> <resource> <htu> [alg]');
  process.exit(2);
}

const keypair = await generateKeyPair(alg);
const tokenEndpoint = `${providerUrl}/token`;
const response = await fetch(tokenEndpoint, {
  method: 'POST',
  headers: {
    'content-type': 'application/x-www-form-urlencoded',
    dpop: await generateProof(keypair, tokenEndpoint, 'POST'),
  },
  body: new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: 'interop-client',
    client_secret: 'interop-secret',
    resource,
    scope: 'echo:read',
  }),
});
const answer = await response.json();
if (!response.ok) {
  console.error(`token request failed: ${response.status} ${JSON.stringify(answer)}`);
  process.exit(1);
}
const proofs = [];
for (let i = 0; i < 3; i += 1) {
  proofs.push(await generateProof(keypair, htu, 'GET', undefined, answer.access_token));
}
process.stdout.write(`${JSON.stringify({ ...answer, proofs })}\n`);
