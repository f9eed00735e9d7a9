/** The answer of the bare upstream (bench/procs/upstream.ts) and of the one-leg system (node-answer.ts). */

/** Size of the JSON-RPC result, in bytes. */
export const RESPONSE_BYTES = 300

/** A JSON-RPC tools/call result of exactly RESPONSE_BYTES bytes. */
export function responseBody (): Buffer {
  const make = (pad: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: `echo: hello ${pad}` }], isError: false } })
  const base = make('').length
  return Buffer.from(make('x'.repeat(Math.max(0, RESPONSE_BYTES - base))))
}
