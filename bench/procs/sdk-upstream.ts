/**
 * A real MCP server as the upstream: @modelcontextprotocol/sdk, stateless
 * Streamable HTTP with JSON responses (enableJsonResponse), one `echo` tool.
 * Written as the SDK's stateless example does it: express + express.json(),
 * a new McpServer and transport per POST.
 *
 * PORT from the environment; listens on 127.0.0.1 only.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
// express 5 ships no type declarations and @types/express is not installed.
// @ts-ignore TS7016
import expressUntyped from 'express'
import { z } from 'zod'

type Req = IncomingMessage & { body?: unknown }
type Handler = (req: Req, res: ServerResponse, next: (err?: unknown) => void) => void | Promise<void>
interface ExpressApp {
  (req: IncomingMessage, res: ServerResponse): void
  use: (handler: Handler) => void
  post: (path: string, handler: Handler) => void
}
const express = expressUntyped as { (): ExpressApp, json: (opts?: { limit?: string }) => Handler }

function buildServer (): McpServer {
  const server = new McpServer({ name: 'bench-upstream', version: '1.0.0' })
  server.registerTool(
    'echo',
    { description: 'Echoes its text argument', inputSchema: { text: z.string() } },
    async ({ text }) => ({ content: [{ type: 'text', text }] })
  )
  return server
}

const app = express()
app.use(express.json())
app.post('/mcp', async (req, res) => {
  const server = buildServer()
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true })
  res.on('close', () => {
    void transport.close()
    void server.close()
  })
  await server.connect(transport)
  await transport.handleRequest(req, res, req.body)
})

const server = createServer(app)
server.listen(Number(process.env.PORT), '127.0.0.1')
process.on('SIGTERM', () => { process.exit(0) })
