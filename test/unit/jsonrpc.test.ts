/**
 * JSON-RPC helpers used when the gateway answers for an unreachable upstream.
 */
import t from 'tap';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';

import { JSONRPC_UPSTREAM_TIMEOUT, JSONRPC_UPSTREAM_UNREACHABLE, jsonRpcError, requestIdOf, type JsonRpcId } from '../../src/mcp/jsonrpc.js';

t.test('requestIdOf', async (t) => {
  const buf = (s: string): Buffer => Buffer.from(s, 'utf8');
  const rows: Array<[string, unknown, JsonRpcId]> = [
    ['string id', buf('{"jsonrpc":"2.0","id":"abc","method":"tools/call"}'), 'abc'],
    ['empty string id', buf('{"jsonrpc":"2.0","id":"","method":"x"}'), ''],
    ['number id', buf('{"jsonrpc":"2.0","id":7,"method":"tools/list"}'), 7],
    ['zero id', buf('{"jsonrpc":"2.0","id":0,"method":"ping"}'), 0],
    ['negative fractional id', buf('{"id":-1.5}'), -1.5],
    ['unicode string id', buf('{"id":"é😀"}'), 'é😀'],
    ['whitespace around the body', buf('  \n{"id":3}\n'), 3],
    ['notification (no id)', buf('{"jsonrpc":"2.0","method":"notifications/initialized"}'), null],
    ['null id', buf('{"jsonrpc":"2.0","id":null,"method":"x"}'), null],
    ['object id', buf('{"id":{"a":1}}'), null],
    ['array id', buf('{"id":[1]}'), null],
    ['boolean id', buf('{"id":true}'), null],
    ['batch array', buf('[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]'), null],
    ['empty batch', buf('[]'), null],
    ['invalid JSON', buf('{"id":1'), null],
    ['not JSON at all', buf('hello'), null],
    ['JSON string', buf('"id"'), null],
    ['JSON number', buf('1'), null],
    ['JSON null', buf('null'), null],
    ['empty buffer', Buffer.alloc(0), null],
    ['huge number overflows to Infinity', buf('{"id":1e400}'), null],
    ['already-parsed object', { id: 'parsed' }, 'parsed'],
    ['already-parsed array', [{ id: 1 }], null],
    ['undefined body', undefined, null],
    ['null body', null, null],
    ['string body is not parsed', '{"id":1}', null],
    ['NaN id in an object', { id: Number.NaN }, null],
    ['Infinity id in an object', { id: Number.POSITIVE_INFINITY }, null],
  ];
  for (const [name, body, expected] of rows) t.equal(requestIdOf(body), expected, name);
});

t.test('jsonRpcError', async (t) => {
  const rows: Array<[JsonRpcId, number, string]> = [
    ['abc', JSONRPC_UPSTREAM_UNREACHABLE, 'The upstream MCP server is unreachable'],
    [7, JSONRPC_UPSTREAM_TIMEOUT, 'The upstream MCP server did not respond in time'],
    [null, -32600, 'Invalid Request'],
    ['quote " and \\ and \n', -1, 'message with "quotes"'],
  ];
  for (const [id, code, message] of rows) {
    t.test(`${JSON.stringify(id)} ${code}`, async (t) => {
      const text = jsonRpcError(id, code, message);
      t.type(text, 'string');
      const parsed = JSON.parse(text) as unknown;
      t.strictSame(parsed, { jsonrpc: '2.0', id, error: { code, message } }, 'exact shape');
      t.strictSame(Object.keys(parsed as object), ['jsonrpc', 'id', 'error'], 'key order');
      t.ok(text.includes('"id":'), 'id is present even when null');
    });
  }
  t.equal(jsonRpcError(1, -32000, 'x'), '{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}', 'exact serialisation');
});

t.test('error codes', async (t) => {
  t.equal(JSONRPC_UPSTREAM_UNREACHABLE, -32000);
  t.equal(JSONRPC_UPSTREAM_TIMEOUT, -32001);
  t.equal(JSONRPC_UPSTREAM_TIMEOUT, ErrorCode.RequestTimeout, 'the MCP SDK request-timeout code');
  for (const c of [JSONRPC_UPSTREAM_UNREACHABLE, JSONRPC_UPSTREAM_TIMEOUT]) t.ok(c <= -32000 && c >= -32099, `${c} is in the implementation-defined server error range`);
});
