// The official MCP TypeScript SDK (@modelcontextprotocol/sdk) as a client of validate-jwt's MCP
// example (examples/mcp_server.rs), driven by tests/mcp_typescript.rs.
//
//   node client.mjs <MCP server URL> <client id> <client secret> <expected issuer>
//
// Prints one JSON line on stdout with what the SDK found and did; everything else goes to
// stderr. Every step uses the SDK's public functions, nothing of ours:
//
//   1. `refused`: an SDK Client without credentials connects, and the server's 401 stops it.
//   2. `challenge`: the 401 of a bare request, read by `extractWWWAuthenticateParams` (the
//      SDK's parser of `WWW-Authenticate`), which yields `resource_metadata`.
//   3. `resourceMetadata`: `discoverOAuthProtectedResourceMetadata` (RFC 9728) from that URL.
//   4. `authorizationServer`: `discoverAuthorizationServerMetadata` for the metadata's first
//      `authorization_servers` entry (RFC 8414 / OpenID discovery at the provider).
//   5. `tool`: an SDK Client with `ClientCredentialsProvider` (the SDK's machine-to-machine
//      OAuth provider) connects: the transport meets the 401, runs the SDK's `auth()` flow
//      (metadata discovery from the challenge, token request with the metadata's `resource`)
//      and retries; then `callTool('whoami')`. `token` is the payload of the access token it
//      obtained; the scope it asks for is the metadata's `scopes_supported` (see below).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import {
  discoverAuthorizationServerMetadata,
  discoverOAuthProtectedResourceMetadata,
  extractWWWAuthenticateParams,
} from '@modelcontextprotocol/sdk/client/auth.js';

console.log = (...args) => console.error(...args);

const [serverUrl, clientId, clientSecret, expectedIssuer] = process.argv.slice(2);
if (!expectedIssuer) {
  console.error('usage: node client.mjs <MCP server URL> <client id> <client secret> <expected issuer>');
  process.exit(2);
}
const clientInfo = { name: 'validate-jwt-interop', version: '1.0.0' };
const out = {};

// 1. No credentials: refused.
try {
  const client = new Client(clientInfo);
  await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl)));
  out.refused = null;
  await client.close();
} catch (err) {
  out.refused = { name: err?.constructor?.name, code: err?.code ?? null, message: String(err?.message ?? err) };
}

// 2. The challenge of a bare request, parsed by the SDK.
const bare = await fetch(serverUrl, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
  body: JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo },
  }),
});
const params = extractWWWAuthenticateParams(bare);
out.challenge = {
  status: bare.status,
  header: bare.headers.get('www-authenticate'),
  resourceMetadataUrl: params.resourceMetadataUrl?.href ?? null,
};

// 3. RFC 9728 discovery from the challenge's URL.
const resourceMetadata = await discoverOAuthProtectedResourceMetadata(serverUrl, {
  resourceMetadataUrl: params.resourceMetadataUrl,
});
out.resourceMetadata = resourceMetadata;

// 4. The authorization server it names.
const asMetadata = await discoverAuthorizationServerMetadata(resourceMetadata.authorization_servers[0]);
out.authorizationServer = asMetadata
  ? { issuer: asMetadata.issuer, token_endpoint: asMetadata.token_endpoint }
  : null;

// 5. With credentials at that authorization server: the SDK's whole flow, then a tool call.
// The SDK's client_credentials token request asks for the provider's configured `scope`
// (`fetchToken` reads `clientMetadata.scope`; the metadata's `scopes_supported` only feeds the
// interactive flows): configure it from the `scopes_supported` the SDK discovered in step 3.
const scope = resourceMetadata.scopes_supported?.join(' ');
const provider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer, scope });
const client = new Client(clientInfo);
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }));
  const tools = await client.listTools();
  out.tools = tools.tools.map((t) => t.name);
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  out.tool = { isError: result.isError ?? false, text: result.content.map((c) => c.text).join('') };
} catch (err) {
  out.error = { name: err?.constructor?.name, code: err?.code ?? null, message: String(err?.message ?? err) };
}
const accessToken = provider.tokens()?.access_token;
out.token = accessToken
  ? JSON.parse(Buffer.from(accessToken.split('.')[1], 'base64url').toString('utf8'))
  : null;
await client.close();

process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
