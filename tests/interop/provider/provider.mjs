// A real OpenID Provider (oidc-provider) for validate-jwt's interop tests.
//
//   node provider.mjs keygen <prefix>
//       Prints a private JWKS on stdout: one key per algorithm the tests cover
//       (RS256, PS256, ES256, ES384, EdDSA), with kids `<prefix>-<alg>`.
//
//   INTEROP_JWKS='<private JWKS JSON>' [INTEROP_PORT=<port>] node provider.mjs
//       Starts the provider on 127.0.0.1 (port 0 = a free port) with that key set and prints
//       one line `INTEROP_PROVIDER_URL=http://127.0.0.1:<port>` on stdout once it accepts
//       connections. Everything else the provider says goes to stderr. It exits when stdin
//       closes, so it never outlives the test that spawned it.
//
// The provider issues RFC 9068 JWT access tokens (`typ: at+jwt`) through the
// `client_credentials` grant with resource indicators (RFC 8707):
//
//   resource `api://interop/<ALG>`  -> aud `api://interop`, signed with <ALG>, scopes echo:read echo:write
//   resource `api://other`          -> aud `api://other`, RS256, scopes echo:read
//
// Client: `interop-client` / `interop-secret` (client_secret_post). With a DPoP proof on the
// token request (RFC 9449, see `dpop-client.mjs`), its tokens are DPoP-bound (`cnf.jkt`).
//
// Client: `interop-mtls-client` / `interop-secret`: certificate-bound tokens (RFC 8705,
// `cnf["x5t#S256"]`). The provider itself speaks plain HTTP: the client certificate comes in the
// `x-client-cert` header (a URL-encoded PEM), as a TLS-terminating proxy would pass it.
//
// MCP (tests/mcp_typescript.rs): an MCP server's URL on loopback, `http://127.0.0.1:<port>/mcp`,
// is a resource too -> aud the URL itself (RFC 8707, as MCP wants), RS256, scope mcp:tools; for
// the client `mcp-client` / `mcp-secret` (client_secret_basic, as the MCP TypeScript SDK's
// ClientCredentialsProvider authenticates).

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints notices with console.info; keep stdout for the URL line alone.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

export const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
export const AUDIENCE = 'api://interop';
export const OTHER_AUDIENCE = 'api://other';
export const CLIENT_ID = 'interop-client';
export const CLIENT_SECRET = 'interop-secret';
export const MTLS_CLIENT_ID = 'interop-mtls-client';
const SCOPES = 'echo:read echo:write';

function keygen(prefix) {
  const pair = (alg) => {
    switch (alg) {
      case 'RS256':
      case 'PS256':
        return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      case 'ES256':
        return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      case 'ES384':
        return crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
      case 'EdDSA':
        return crypto.generateKeyPairSync('ed25519');
      default:
        throw new Error(`unknown algorithm ${alg}`);
    }
  };
  const keys = ALGORITHMS.map((alg) => ({
    ...pair(alg).privateKey.export({ format: 'jwk' }),
    kid: `${prefix}-${alg.toLowerCase()}`,
    alg,
    use: 'sig',
  }));
  return { keys };
}

function readJwks() {
  const raw = process.env.INTEROP_JWKS;
  if (!raw) {
    throw new Error('INTEROP_JWKS must hold a private JWKS (see `node provider.mjs keygen`)');
  }
  const jwks = JSON.parse(raw);
  for (const alg of ALGORITHMS) {
    if (!jwks.keys.some((k) => k.alg === alg)) {
      throw new Error(`INTEROP_JWKS has no ${alg} key`);
    }
  }
  return jwks;
}

export const MCP_RESOURCE = /^http:\/\/127\.0\.0\.1:[0-9]+\/mcp$/;

function resourceServer(resource) {
  if (MCP_RESOURCE.test(resource)) {
    return {
      audience: resource,
      scope: 'mcp:tools',
      accessTokenFormat: 'jwt',
      accessTokenTTL: 600,
      jwt: { sign: { alg: 'RS256' } },
    };
  }
  if (resource === OTHER_AUDIENCE) {
    return {
      audience: OTHER_AUDIENCE,
      scope: 'echo:read',
      accessTokenFormat: 'jwt',
      accessTokenTTL: 600,
      jwt: { sign: { alg: 'RS256' } },
    };
  }
  const prefix = `${AUDIENCE}/`;
  if (resource.startsWith(prefix)) {
    const alg = resource.slice(prefix.length);
    if (ALGORITHMS.includes(alg)) {
      return {
        audience: AUDIENCE,
        scope: SCOPES,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg } },
      };
    }
  }
  return undefined;
}

async function start() {
  const jwks = readJwks();
  const { default: Provider, errors } = await import('oidc-provider');

  const server = http.createServer();
  const requestedPort = Number(process.env.INTEROP_PORT || 0);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(requestedPort, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    jwks,
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
      {
        client_id: MTLS_CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_post',
        tls_client_certificate_bound_access_tokens: true,
      },
      {
        client_id: 'mcp-client',
        client_secret: 'mcp-secret',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    enabledJWA: {
      // The access tokens' algorithms come from the resource servers below; these lists
      // only control what discovery advertises.
      idTokenSigningAlgValues: ALGORITHMS,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const pem = ctx.get('x-client-cert');
          return pem ? decodeURIComponent(pem) : undefined;
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo(ctx, resource) {
          const info = resourceServer(resource);
          if (!info) {
            throw new errors.InvalidTarget(`unknown resource ${resource}`);
          }
          return info;
        },
      },
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  provider.on('grant.error', (ctx, err) => console.error('grant.error', err));
  server.on('request', provider.callback());

  process.stdout.write(`INTEROP_PROVIDER_URL=${issuer}\n`);

  // Exit when the test closes our stdin (or dies).
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));
}

const [command, arg] = process.argv.slice(2);
if (command === 'keygen') {
  process.stdout.write(`${JSON.stringify(keygen(arg || 'k'))}\n`);
} else if (command === undefined) {
  start().catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  console.error('usage: node provider.mjs [keygen <prefix>]');
  process.exit(2);
}
