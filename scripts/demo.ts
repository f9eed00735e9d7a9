/**
 * `npm run demo`: a development authorization server (oidc-provider with dev
 * login pages, DCR, PKCE and JWT access tokens), the unmodified reference MCP
 * server (@modelcontextprotocol/server-everything) and the gateway in front of
 * it, all on loopback. Prints the commands to connect. Ctrl-C stops everything.
 *
 * Ports: DEMO_GATEWAY_PORT (default 8080), DEMO_AS_PORT (default 9000).
 * For development only: the AS accepts any user name and password.
 */
import { stringify } from 'yaml'
import { startAuthServer } from '../test/helpers/as.js'
import { startEverything } from '../test/helpers/upstream.js'
import { parseConfig } from '../src/config/load.js'
import { createGateway } from '../src/gateway.js'

const GATEWAY_PORT = Number(process.env.DEMO_GATEWAY_PORT ?? 8080)
const AS_PORT = Number(process.env.DEMO_AS_PORT ?? 9000)
const M2M_SECRET = 'demo-secret'

const gatewayUrl = `http://127.0.0.1:${GATEWAY_PORT}`
const mcpUrl = `${gatewayUrl}/mcp`

const as = await startAuthServer({ port: AS_PORT, m2mSecret: M2M_SECRET })
as.registerResource({ url: mcpUrl, scope: 'mcp:tools', alg: 'ES256', ttlSeconds: 3600 })
const upstream = await startEverything('streamableHttp')

const config = parseConfig(stringify({
  listen: { host: '127.0.0.1', port: GATEWAY_PORT },
  publicUrl: gatewayUrl,
  // The MCP Inspector's web UI (default port 6274) may call the gateway from the browser.
  allowedOrigins: [gatewayUrl, 'http://localhost:6274', 'http://127.0.0.1:6274'],
  authorizationServers: [{ issuer: as.issuer }],
  routes: [{ path: '/mcp', upstream: `${upstream.origin}/mcp`, scopes: ['mcp:tools'], claims: { 'X-Forwarded-Email': 'email' } }],
  logLevel: process.env.DEMO_LOG_LEVEL ?? 'info'
}))
const gateway = createGateway(config)
await gateway.listen()
await gateway.authenticator.whenReady()

const json = "-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'"
const init = '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
const lines = [
  '',
  '  mcp-auth-gateway demo is running',
  '',
  `  MCP URL (protected):        ${mcpUrl}`,
  `  Protected resource metadata: ${gatewayUrl}/.well-known/oauth-protected-resource/mcp`,
  `  Authorization server:        ${as.issuer}   (dev login: any user name and password)`,
  `  Upstream (server-everything): ${upstream.origin}/mcp   (reachable only through the gateway in real deployments)`,
  '',
  '  1. Get a token (client credentials) and call tools/list with curl:',
  '',
  `TOKEN=$(curl -s -u m2m:${M2M_SECRET} -d grant_type=client_credentials -d scope=mcp:tools -d resource=${mcpUrl} ${as.issuer}/token | sed -E 's/.*"access_token":"([^"]+)".*/\\1/')`,
  `SID=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $TOKEN" ${json} -d '${init}' ${mcpUrl} | tr -d '\\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')`,
  `curl -s -H "Authorization: Bearer $TOKEN" -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-06-18' ${json} -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' ${mcpUrl}`,
  `curl -s -H "Authorization: Bearer $TOKEN" -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-06-18' ${json} -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello through the gateway"}}}' ${mcpUrl}`,
  '',
  '  Without a token you get the challenge MCP clients follow:',
  `curl -si -X POST ${json} -d '${init}' ${mcpUrl}`,
  '',
  '  2. Or connect with the MCP Inspector, which runs the whole OAuth flow (DCR + PKCE):',
  '',
  'npx @modelcontextprotocol/inspector',
  `     then: Transport "Streamable HTTP", URL ${mcpUrl}, Connect (log in with any name).`,
  '',
  '     Its CLI mode (Node >= 22.19) with the token from step 1:',
  `npx @modelcontextprotocol/inspector --cli ${mcpUrl} --transport http --header "Authorization: Bearer $TOKEN" --method tools/list`,
  '',
  '  Ctrl-C stops the demo.',
  ''
]
process.stdout.write(lines.join('\n') + '\n')

let stopping = false
const stop = (): void => {
  if (stopping) return
  stopping = true
  void (async () => {
    await gateway.close()
    await upstream.close()
    await as.close()
    process.exit(0)
  })()
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
