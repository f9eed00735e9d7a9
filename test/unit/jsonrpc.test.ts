/**
 * JSON-RPC helpers: ids for gateway-written errors, and (policy routes) body
 * classification, MCP 2026-07-28 header checks and error bodies.
 */
import t from 'tap';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';

import {
  JSONRPC_UPSTREAM_TIMEOUT, JSONRPC_UPSTREAM_UNREACHABLE, jsonRpcError, requestIdOf, type JsonRpcId,
  parseJsonRpc, nestedDeeperThan, kindOf, targetOf, targetParamOf, headerMismatch, decodeMcpHeaderValue, jsonRpcErrorsFor, type JsonRpcBody,
  JSONRPC_PARSE_ERROR, JSONRPC_INVALID_REQUEST, JSONRPC_INVALID_PARAMS, JSONRPC_HEADER_MISMATCH, JSONRPC_INSUFFICIENT_SCOPE,
} from '../../src/mcp/jsonrpc.js';

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

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

t.test('parseJsonRpc: valid bodies are classified', async (t) => {
  type Kinds = Array<'request' | 'notification' | 'response'>;
  const rows: Array<[string, string, boolean, Kinds, Array<string | undefined>]> = [
    ['request', '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', false, ['request'], [undefined]],
    ['request with string id and params', '{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":1}}', false, ['request'], [undefined]],
    ['request with params array (JSON-RPC §4.2)', '{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2]}', false, ['request'], [undefined]],
    ['request with fractional id', '{"jsonrpc":"2.0","id":1.5,"method":"ping"}', false, ['request'], [undefined]],
    ['tools/call', '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{}}}', false, ['request'], ['echo']],
    ['tools/call with an empty name', '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":""}}', false, ['request'], ['']],
    ['prompts/get', '{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summarize"}}', false, ['request'], ['summarize']],
    ['resources/read', '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"drupal://node/1"}}', false, ['request'], ['drupal://node/1']],
    ['resources/subscribe', '{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"u"}}', false, ['request'], ['u']],
    ['resources/unsubscribe', '{"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":"u"}}', false, ['request'], ['u']],
    ['notification', '{"jsonrpc":"2.0","method":"notifications/initialized"}', false, ['notification'], [undefined]],
    ['result response', '{"jsonrpc":"2.0","id":5,"result":{}}', false, ['response'], [undefined]],
    ['error response with null id (§5)', '{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}', false, ['response'], [undefined]],
    ['whitespace around', ' \n{"jsonrpc":"2.0","id":1,"method":"ping"}\n ', false, ['request'], [undefined]],
    ['batch of three kinds', '[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":9,"result":1}]', true, ['request', 'notification', 'response'], ['a', undefined, undefined]],
    ['batch of one', '[{"jsonrpc":"2.0","id":1,"method":"ping"}]', true, ['request'], [undefined]],
  ];
  for (const [name, text, batch, kinds, targets] of rows) {
    const r = parseJsonRpc(b(text));
    if (!r.ok) {
      t.fail(`${name}: refused with ${r.code}`);
      continue;
    }
    t.equal(r.batch, batch, `${name}: batch`);
    t.strictSame(r.messages.map(kindOf), kinds, `${name}: kinds`);
    t.strictSame(r.messages.map(targetOf), targets, `${name}: targets`);
    t.strictSame(r.value, JSON.parse(text), `${name}: value is the parsed JSON`);
  }
});

t.test('parseJsonRpc: invalid bodies get the JSON-RPC error to answer with', async (t) => {
  const rows: Array<[string, Buffer | undefined, number, JsonRpcId]> = [
    ['no body', undefined, JSONRPC_PARSE_ERROR, null],
    ['empty body', Buffer.alloc(0), JSONRPC_PARSE_ERROR, null],
    ['not JSON', b('hello'), JSONRPC_PARSE_ERROR, null],
    ['truncated JSON', b('{"jsonrpc":"2.0","id":1'), JSONRPC_PARSE_ERROR, null],
    ['UTF-8 BOM before JSON', b('\ufeff{"jsonrpc":"2.0","id":1,"method":"x"}'), JSONRPC_PARSE_ERROR, null],
    ['two JSON texts', b('{"jsonrpc":"2.0","id":1,"method":"x"}{}'), JSONRPC_PARSE_ERROR, null],
    ['empty batch', b('[]'), JSONRPC_INVALID_REQUEST, null],
    ['JSON number', b('1'), JSONRPC_INVALID_REQUEST, null],
    ['JSON string', b('"x"'), JSONRPC_INVALID_REQUEST, null],
    ['JSON null', b('null'), JSONRPC_INVALID_REQUEST, null],
    ['JSON true', b('true'), JSONRPC_INVALID_REQUEST, null],
    ['empty object', b('{}'), JSONRPC_INVALID_REQUEST, null],
    ['no jsonrpc member', b('{"id":1,"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['jsonrpc 1.0', b('{"jsonrpc":"1.0","id":1,"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['jsonrpc as a number', b('{"jsonrpc":2.0,"id":1,"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['method not a string', b('{"jsonrpc":"2.0","id":1,"method":7}'), JSONRPC_INVALID_REQUEST, null],
    ['method null', b('{"jsonrpc":"2.0","id":1,"method":null}'), JSONRPC_INVALID_REQUEST, null],
    ['request id null (MCP forbids)', b('{"jsonrpc":"2.0","id":null,"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['request id object', b('{"jsonrpc":"2.0","id":{},"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['request id boolean', b('{"jsonrpc":"2.0","id":true,"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['request id overflowing to Infinity', b('{"jsonrpc":"2.0","id":1e400,"method":"x"}'), JSONRPC_INVALID_REQUEST, null],
    ['params a string', b('{"jsonrpc":"2.0","id":1,"method":"x","params":"p"}'), JSONRPC_INVALID_REQUEST, null],
    ['params null', b('{"jsonrpc":"2.0","id":1,"method":"x","params":null}'), JSONRPC_INVALID_REQUEST, null],
    ['params a number', b('{"jsonrpc":"2.0","id":1,"method":"x","params":3}'), JSONRPC_INVALID_REQUEST, null],
    ['request carrying a result', b('{"jsonrpc":"2.0","id":1,"method":"x","result":{}}'), JSONRPC_INVALID_REQUEST, null],
    ['notification carrying an error', b('{"jsonrpc":"2.0","method":"x","error":{}}'), JSONRPC_INVALID_REQUEST, null],
    ['response with result and error', b('{"jsonrpc":"2.0","id":1,"result":{},"error":{}}'), JSONRPC_INVALID_REQUEST, null],
    ['response with neither', b('{"jsonrpc":"2.0","id":1}'), JSONRPC_INVALID_REQUEST, null],
    ['response without id', b('{"jsonrpc":"2.0","result":{}}'), JSONRPC_INVALID_REQUEST, null],
    ['response with object id', b('{"jsonrpc":"2.0","id":[1],"result":{}}'), JSONRPC_INVALID_REQUEST, null],
    ['batch with one invalid element', b('[{"jsonrpc":"2.0","id":1,"method":"x"},{"jsonrpc":"2.0","id":2}]'), JSONRPC_INVALID_REQUEST, null],
    ['batch with a nested batch', b('[[{"jsonrpc":"2.0","id":1,"method":"x"}]]'), JSONRPC_INVALID_REQUEST, null],
    ['batch with a number', b('[1]'), JSONRPC_INVALID_REQUEST, null],
    ['tools/call without params', b('{"jsonrpc":"2.0","id":3,"method":"tools/call"}'), JSONRPC_INVALID_PARAMS, 3],
    ['tools/call with a numeric name', b('{"jsonrpc":"2.0","id":"r","method":"tools/call","params":{"name":1}}'), JSONRPC_INVALID_PARAMS, 'r'],
    ['tools/call with params as an array', b('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":["delete_node"]}'), JSONRPC_INVALID_PARAMS, 3],
    ['tools/call with a null name', b('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":null}}'), JSONRPC_INVALID_PARAMS, 3],
    ['tools/call with an object name', b('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":{"a":1}}}'), JSONRPC_INVALID_PARAMS, 3],
    ['prompts/get without name', b('{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{}}'), JSONRPC_INVALID_PARAMS, 3],
    ['resources/read without uri', b('{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"name":"x"}}'), JSONRPC_INVALID_PARAMS, 3],
    ['resources/subscribe with a numeric uri', b('{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":5}}'), JSONRPC_INVALID_PARAMS, 3],
    ['tools/call notification without a name', b('{"jsonrpc":"2.0","method":"tools/call","params":{}}'), JSONRPC_INVALID_PARAMS, null],
    ['batch element with invalid params: id not echoed', b('[{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{}}]'), JSONRPC_INVALID_PARAMS, null],
  ];
  for (const [name, body, code, id] of rows) {
    const r = parseJsonRpc(body);
    if (r.ok) {
      t.fail(`${name}: accepted`);
      continue;
    }
    t.equal(r.code, code, `${name}: code ${code}`);
    t.equal(r.id, id, `${name}: id ${JSON.stringify(id)}`);
    t.type(r.message, 'string');
  }
});

t.test('parseJsonRpc with a batch cap (limits.maxBatchMessages): longer batches refused before any element is read', async (t) => {
  const msg = (i: number): string => `{"jsonrpc":"2.0","id":${i},"method":"ping"}`;
  const batch = (n: number): string => `[${Array.from({ length: n }, (_, i) => msg(i)).join(',')}]`;
  // [body, cap, accepted]
  const rows: Array<[string, string, number | null, boolean]> = [
    ['3 messages', batch(3), 3, true],
    ['4 messages', batch(4), 3, false],
    ['1 message in a batch', batch(1), 1, true],
    ['2 messages', batch(2), 1, false],
    ['a single message is not a batch', msg(1), 1, true],
    ['no cap: 10,000 messages', batch(10_000), null, true],
    ['4 messages, the last invalid: the cap answers first', `[${msg(1)},${msg(2)},${msg(3)},{"jsonrpc":"1.0"}]`, 3, false],
  ];
  for (const [name, text, cap, accepted] of rows) {
    const r = parseJsonRpc(b(text), cap);
    t.equal(r.ok, accepted, `${name}, cap ${String(cap)}: ${accepted ? 'accepted' : 'refused'}`);
    if (!r.ok) {
      t.strictSame(r, { ok: false, code: JSONRPC_INVALID_REQUEST, message: `Invalid Request: a batch may hold at most ${cap} messages`, id: null, batchTooLong: true }, `${name}: -32600, id null, marked batchTooLong`);
    } else {
      t.equal(r.messages.length, text.startsWith('[') ? JSON.parse(text).length : 1, `${name}: every message kept`);
    }
  }
  const invalid = parseJsonRpc(b(`[${msg(1)},{"jsonrpc":"1.0"}]`), 3);
  t.ok(!invalid.ok && invalid.batchTooLong === undefined, 'an invalid batch within the cap is an ordinary -32600, not batchTooLong');
});

t.test('nesting depth is bounded (the body is re-serialised; JSON.stringify recurses)', async (t) => {
  const deep = (n: number): string => `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":${'['.repeat(n)}${']'.repeat(n)}}}`;
  // The message and params objects are two levels: 254 arrays inside them make 256.
  t.equal(parseJsonRpc(b(deep(254))).ok, true, '256 levels: accepted');
  const r = parseJsonRpc(b(deep(255)));
  t.equal(r.ok, false, '257 levels: refused');
  if (!r.ok) t.equal(r.code, JSONRPC_INVALID_REQUEST);
  const huge = parseJsonRpc(b(deep(100_000)));
  t.equal(huge.ok, false, '100 000 levels: refused, no stack overflow');
  const rows: Array<[string, number, boolean]> = [
    ['[[[]]]', 3, false],
    ['[[[]]]', 2, true],
    ['["[[[[[[", {"a":"]]]]{{{{"}]', 2, false],
    ['["\\"[[[["]', 1, false],
    ['["\\\\", [[]]]', 2, true],
    ['{}', 0, true],
  ];
  for (const [text, max, expected] of rows) t.equal(nestedDeeperThan(b(text), max), expected, `${text} deeper than ${max}: ${expected}`);
});

t.test('targetParamOf', async (t) => {
  t.equal(targetParamOf('tools/call'), 'name');
  t.equal(targetParamOf('prompts/get'), 'name');
  t.equal(targetParamOf('resources/read'), 'uri');
  t.equal(targetParamOf('resources/subscribe'), 'uri');
  t.equal(targetParamOf('resources/unsubscribe'), 'uri');
  t.equal(targetParamOf('tools/list'), undefined);
  t.equal(targetParamOf('resources/list'), undefined);
});

t.test('decodeMcpHeaderValue (MCP 2026-07-28 Value Encoding)', async (t) => {
  const rows: Array<[string, string | undefined]> = [
    ['us-west1', 'us-west1'],
    ['get_weather', 'get_weather'],
    ['=?base64?SGVsbG8sIOS4lueVjA==?=', 'Hello, 世界'],
    ['=?base64?IHBhZGRlZCA=?=', ' padded '],
    ['=?base64?bGluZTEKbGluZTI=?=', 'line1\nline2'],
    ['=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=', '=?base64?literal?='],
    ['=?base64??=', ''],
    ['=?BASE64?SGk=?=', '=?BASE64?SGk=?='],
    ['=?base64?=', '=?base64?='],
    ['=?base64?SGk?=', undefined],
    ['=?base64?SGl=?=', undefined],
    ['=?base64?S-k=?=', undefined],
    ['=?base64?SG k=?=', undefined],
    ['=?base64?/w==?=', undefined],
    ['=?base64?wKA=?=', undefined],
  ];
  for (const [raw, expected] of rows) t.equal(decodeMcpHeaderValue(raw), expected, `${JSON.stringify(raw)} → ${JSON.stringify(expected)}`);
});

t.test('headerMismatch', async (t) => {
  const body = (text: string): JsonRpcBody => {
    const r = parseJsonRpc(b(text));
    if (!r.ok) throw new Error('test body must be valid');
    return r;
  };
  const call = body('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_node"}}');
  const callUnicode = body('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"Hello, 世界"}}');
  const list = body('{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
  const read = body('{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a b"}}');
  const prompt = body('{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}');
  const response = body('{"jsonrpc":"2.0","id":1,"result":{}}');
  const batch = body('[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]');
  const rows: Array<[string, JsonRpcBody, string | undefined, string | undefined, boolean]> = [
    ['no headers', call, undefined, undefined, false],
    ['no headers on a batch', batch, undefined, undefined, false],
    ['matching method and name', call, 'tools/call', 'delete_node', false],
    ['matching method only', call, 'tools/call', undefined, false],
    ['matching name only', call, undefined, 'delete_node', false],
    ['other method', call, 'tools/list', undefined, true],
    ['method differs in case (values are case-sensitive)', call, 'Tools/Call', undefined, true],
    ['empty method header', call, '', undefined, true],
    ['other name', call, 'tools/call', 'echo', true],
    ['name differs in case', call, 'tools/call', 'Delete_Node', true],
    ['duplicate headers joined by Node', call, 'tools/call, tools/call', undefined, true],
    ['Base64 sentinel name matching', callUnicode, 'tools/call', '=?base64?SGVsbG8sIOS4lueVjA==?=', false],
    ['Base64 sentinel of the plain name', call, 'tools/call', `=?base64?${Buffer.from('delete_node').toString('base64')}?=`, false],
    ['Base64 sentinel of another name', call, 'tools/call', `=?base64?${Buffer.from('echo').toString('base64')}?=`, true],
    ['malformed Base64 sentinel', call, 'tools/call', '=?base64?!!!!?=', true],
    ['Mcp-Name on a method that names nothing', list, 'tools/list', 'x', true],
    ['Mcp-Name empty on a method that names nothing', list, 'tools/list', '', true],
    ['resources/read uri', read, 'resources/read', '=?base64?ZmlsZTovLy9hIGI=?=', false],
    ['resources/read other uri', read, 'resources/read', 'file:///a', true],
    ['prompts/get name', prompt, 'prompts/get', 'summarize', false],
    ['prompts/get other name', prompt, 'prompts/get', 'other', true],
    ['Mcp-Method on a response', response, 'tools/call', undefined, true],
    ['Mcp-Method on a batch', batch, 'tools/list', undefined, true],
    ['Mcp-Name on a batch', batch, undefined, 'x', true],
  ];
  for (const [name, bodyValue, method, mcpName, mismatch] of rows) {
    const r = headerMismatch(bodyValue, method, mcpName);
    t.equal(r !== undefined, mismatch, `${name}: ${mismatch ? 'mismatch' : 'consistent'}`);
    if (r !== undefined) t.match(r, /^Header mismatch: /, `${name}: message`);
  }
});

t.test('jsonRpcErrorsFor', async (t) => {
  const body = (text: string): JsonRpcBody => {
    const r = parseJsonRpc(b(text));
    if (!r.ok) throw new Error('test body must be valid');
    return r;
  };
  const code = JSONRPC_INSUFFICIENT_SCOPE;
  const rows: Array<[string, string, unknown]> = [
    ['single request', '{"jsonrpc":"2.0","id":"q","method":"x"}', { jsonrpc: '2.0', id: 'q', error: { code, message: 'm0' } }],
    ['single notification: id null', '{"jsonrpc":"2.0","method":"x"}', { jsonrpc: '2.0', id: null, error: { code, message: 'm0' } }],
    ['single response: id null', '{"jsonrpc":"2.0","id":4,"result":{}}', { jsonrpc: '2.0', id: null, error: { code, message: 'm0' } }],
    ['batch: one error per request, in order',
      '[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","id":"z","method":"b"},{"jsonrpc":"2.0","id":7,"result":1}]',
      [{ jsonrpc: '2.0', id: 1, error: { code, message: 'm0' } }, { jsonrpc: '2.0', id: 'z', error: { code, message: 'm2' } }]],
    ['batch without ids: one error, id null', '[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","method":"m"}]', { jsonrpc: '2.0', id: null, error: { code, message: 'm0' } }],
  ];
  for (const [name, text, expected] of rows) {
    t.strictSame(JSON.parse(jsonRpcErrorsFor(body(text), code, (_m, i) => `m${i}`)), expected, name);
  }
});

t.test('protocol error codes', async (t) => {
  t.equal(JSONRPC_PARSE_ERROR, ErrorCode.ParseError);
  t.equal(JSONRPC_INVALID_REQUEST, ErrorCode.InvalidRequest);
  t.equal(JSONRPC_INVALID_PARAMS, ErrorCode.InvalidParams);
  t.equal(JSONRPC_HEADER_MISMATCH, -32020, 'MCP 2026-07-28 HeaderMismatch');
  t.ok(JSONRPC_INSUFFICIENT_SCOPE > -32000 || JSONRPC_INSUFFICIENT_SCOPE < -32768, 'the gateway-defined code is outside the JSON-RPC reserved range');
});
