/**
 * System (d): what a Node developer writes by default to put OAuth in front of
 * an MCP server: express, the MCP SDK's requireBearerAuth with a jose JWKS
 * verifier (no verified-token cache), and http-proxy-middleware with its
 * defaults (no agent: a new upstream connection per request).
 *
 * Environment: PORT, UPSTREAM (origin), ISSUER, JWKS_URI, AUDIENCE,
 * KEEPALIVE=1 to give the proxy a keep-alive agent (the optional variant).
 */
import { Agent, createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http'
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js'
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { createProxyMiddleware } from 'http-proxy-middleware'
import { createRemoteJWKSet, jwtVerify } from 'jose'
// express 5 ships no type declarations and @types/express is not installed.
// @ts-ignore TS7016
import expressUntyped from 'express'
import { requiredEnv } from './env.js'

type Handler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void
interface ExpressApp {
  (req: IncomingMessage, res: ServerResponse): void
  use: (path: string, ...handlers: Handler[]) => void
}
const express = expressUntyped as () => ExpressApp

const env = requiredEnv
const issuer = env('ISSUER')
const audience = env('AUDIENCE')
const jwks = createRemoteJWKSet(new URL(env('JWKS_URI')))

const verifier = {
  async verifyAccessToken (token: string): Promise<AuthInfo> {
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience })
      return {
        token,
        clientId: typeof payload.client_id === 'string' ? payload.client_id : '',
        scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
        expiresAt: payload.exp
      }
    } catch {
      throw new InvalidTokenError('Invalid access token')
    }
  }
}

const app = express()
app.use(
  '/mcp',
  requireBearerAuth({ verifier, requiredScopes: ['mcp:tools'] }) as unknown as Handler,
  createProxyMiddleware({
    target: `${env('UPSTREAM')}/mcp`,
    changeOrigin: true,
    ...(process.env.KEEPALIVE === '1' ? { agent: new Agent({ keepAlive: true }) } : {})
  }) as unknown as Handler
)

createServer(app as unknown as RequestListener).listen(Number(env('PORT')), '127.0.0.1')
process.on('SIGTERM', () => { process.exit(0) })
