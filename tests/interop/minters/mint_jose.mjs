// Mints tests/interop/fixtures/node-jose.json with `jose` (keys and tokens).
//
// Shapes: RFC 9068 access tokens (`typ: at+jwt`, `client_id`, `scope`); `aud` a string.

import { readFileSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const AUDIENCE = 'api://interop';
const OTHER_AUDIENCE = 'api://other';
const FAR_FUTURE = 4102444800; // 2100-01-01T00:00:00Z: the fixtures are committed.
const LONG_AGO = 946684800; // 2000-01-01T00:00:00Z
const ISSUER = 'https://jose.interop.test';
const OUT = new URL('../fixtures/node-jose.json', import.meta.url);

const generate = (alg) => generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});

const now = Math.floor(Date.now() / 1000);
const base = {
  iss: ISSUER, sub: 'jose-client', client_id: 'jose-client', aud: AUDIENCE, iat: now, exp: FAR_FUTURE,
};
const cases = [
  ['valid', 'valid', base, false],
  ['wrong key', 'invalid_signature', base, true],
  ['expired', 'expired', { ...base, iat: LONG_AGO - 3600, exp: LONG_AGO }, false],
  ['wrong audience', 'invalid_audience', { ...base, aud: OTHER_AUDIENCE }, false],
];

const keys = [];
const tokens = [];
for (const alg of ALGORITHMS) {
  const kid = `jose-${alg.toLowerCase()}`;
  const key = await generate(alg);
  const stranger = await generate(alg);
  keys.push({ ...(await exportJWK(key.publicKey)), kid, alg, use: 'sig' });
  for (const [name, expect, claims, useStranger] of cases) {
    const token = await new SignJWT({ ...claims, jti: randomUUID(), scope: 'echo:read' })
      .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
      .sign((useStranger ? stranger : key).privateKey);
    tokens.push({ name, alg, expect, token });
  }
}

const { version } = JSON.parse(
  readFileSync(new URL('./node_modules/jose/package.json', import.meta.url), 'utf8'),
);
const document = {
  library: `jose ${version} (Node.js ${process.versions.node})`,
  generator: 'tests/interop/minters/mint_jose.mjs',
  issuer: ISSUER,
  audience: AUDIENCE,
  jwks: { keys },
  tokens,
};
writeFileSync(OUT, `${JSON.stringify(document, null, 2)}\n`);
console.log(`wrote ${OUT.pathname} (${tokens.length} tokens)`);
