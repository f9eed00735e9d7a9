/**
 * Filtered tools/list: JSON bodies (whole, byte-identical when nothing is
 * removed) and SSE streams (only the data of a response to a remembered id is
 * rewritten; every other event passes on unchanged as soon as it is
 * complete), however the stream is chunked.
 */
import t from 'tap';

import {
  filterToolsListJson, filterToolsListMessage, MAX_TOOLS_LIST_RESPONSE_BYTES,
  ToolsListFilterError, ToolsListSseFilter, ToolsListSseTransform, type ToolsListIds,
} from '../../src/mcp/tools-filter.js';

const allowed = (name: string): boolean => !name.startsWith('admin_') && name !== 'delete_node';

const TOOLS = [
  { name: 'echo', description: 'Returns the given text', inputSchema: { type: 'object' } },
  { name: 'delete_node', description: 'Deletes a node' },
  { name: 'search_docs', description: 'é😀 unicode' },
  { name: 'admin_reset' },
];
const KEPT = [TOOLS[0], TOOLS[2]];

const listResponse = (id: unknown, tools: unknown = TOOLS, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ jsonrpc: '2.0', id, result: { tools, ...extra } });

t.test('filterToolsListMessage', async (t) => {
  const ids = new Set<string | number>([1, 'x']);
  const rows: Array<{ name: string, msg: unknown, ids: ToolsListIds, changed: boolean, tools?: unknown }> = [
    { name: 'matching numeric id', msg: listResponse(1), ids, changed: true, tools: KEPT },
    { name: 'matching string id', msg: listResponse('x'), ids, changed: true, tools: KEPT },
    { name: 'id of another request', msg: listResponse(2), ids, changed: false, tools: TOOLS },
    { name: 'string "1" is not id 1', msg: listResponse('1'), ids, changed: false, tools: TOOLS },
    { name: 'null id', msg: listResponse(null), ids, changed: false, tools: TOOLS },
    { name: 'any id mode', msg: listResponse(99), ids: undefined, changed: true, tools: KEPT },
    { name: 'nothing to remove', msg: listResponse(1, KEPT), ids, changed: false, tools: KEPT },
    { name: 'tools without a string name are removed', msg: listResponse(1, [{ name: 'echo' }, { name: 3 }, {}, null, 'echo', ['echo']]), ids, changed: true, tools: [{ name: 'echo' }] },
    { name: 'empty list', msg: listResponse(1, []), ids, changed: false, tools: [] },
    { name: 'a request with the id (not a response)', msg: { jsonrpc: '2.0', id: 1, method: 'x', result: { tools: TOOLS } }, ids, changed: false },
    { name: 'error response', msg: { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'm' } }, ids, changed: false },
    { name: 'result not an object', msg: { jsonrpc: '2.0', id: 1, result: 'tools' }, ids, changed: false },
    { name: 'result an array', msg: { jsonrpc: '2.0', id: 1, result: [TOOLS] }, ids, changed: false },
    { name: 'tools not an array', msg: listResponse(1, { echo: {} }), ids, changed: false },
    { name: 'not an object', msg: 'x', ids, changed: false },
    { name: 'null', msg: null, ids, changed: false },
  ];
  for (const row of rows) {
    const msg = structuredClone(row.msg);
    t.equal(filterToolsListMessage(msg, row.ids, allowed), row.changed, `${row.name}: ${row.changed ? 'changed' : 'untouched'}`);
    if (row.tools !== undefined) t.strictSame((msg as { result: { tools: unknown } }).result.tools, row.tools, `${row.name}: tools`);
    if (!row.changed) t.strictSame(msg, row.msg, `${row.name}: message unchanged`);
  }
  const withCursor = listResponse(1, TOOLS, { nextCursor: 'c2' });
  filterToolsListMessage(withCursor, ids, allowed);
  t.strictSame(withCursor, listResponse(1, KEPT, { nextCursor: 'c2' }), 'other result members are kept');
});

t.test('filterToolsListJson', async (t) => {
  const ids = new Set<string | number>([7]);
  const single = Buffer.from(JSON.stringify(listResponse(7)));
  t.strictSame(JSON.parse(filterToolsListJson(single, ids, allowed)!.toString()), listResponse(7, KEPT), 'single response filtered');

  const batch = Buffer.from(JSON.stringify([listResponse(7), listResponse(8), { jsonrpc: '2.0', id: 9, result: {} }]));
  t.strictSame(JSON.parse(filterToolsListJson(batch, ids, allowed)!.toString()), [listResponse(7, KEPT), listResponse(8), { jsonrpc: '2.0', id: 9, result: {} }], 'batch: only the matching element');

  // Bytes the gateway would change by re-serialising (big integer, spacing) stay as they are when nothing is removed.
  const untouched = Buffer.from('{ "jsonrpc": "2.0", "id": 8, "result": { "tools": [{"name":"delete_node"}], "big": 12345678901234567890 } }');
  t.equal(filterToolsListJson(untouched, ids, allowed), untouched, 'other id: the very same buffer');
  const nothingRemoved = Buffer.from('{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo"}],"big":12345678901234567890}}');
  t.equal(filterToolsListJson(nothingRemoved, ids, allowed), nothingRemoved, 'nothing removed: the very same buffer');

  t.equal(filterToolsListJson(Buffer.from('not json'), ids, allowed), undefined, 'not JSON: cannot be filtered');
  t.equal(filterToolsListJson(Buffer.from('{"jsonrpc":"2.0","id":7,"result":{"tools":['), ids, allowed), undefined, 'truncated JSON: cannot be filtered');
  const empty = Buffer.alloc(0);
  t.equal(filterToolsListJson(empty, ids, allowed), empty, 'empty body: nothing to filter');
  const escaped = Buffer.from('{"jsonrpc":"2.0","id":7,"result":{"t\\u006fols":[{"name":"delete_node"},{"name":"echo"}]}}');
  t.strictSame(JSON.parse(filterToolsListJson(escaped, ids, allowed)!.toString()), listResponse(7, [{ name: 'echo' }]), 'a key spelled with escapes is still found');
});

/** Feed chunks through a fresh filter; returns every write's output. */
function feed(chunks: Buffer[], ids: ToolsListIds, max = MAX_TOOLS_LIST_RESPONSE_BYTES): { out: Buffer, perWrite: Array<Buffer | undefined> } {
  const f = new ToolsListSseFilter(ids, allowed, max);
  const perWrite: Array<Buffer | undefined> = [];
  for (const c of chunks) perWrite.push(f.write(c));
  const rest = f.end();
  const all = [...perWrite, rest].filter((b): b is Buffer => b !== undefined);
  return { out: Buffer.concat(all), perWrite };
}

const ev = (lines: string[], eol = '\n'): string => lines.join(eol) + eol + eol;
const data = (v: unknown): string => `data: ${JSON.stringify(v)}`;

const LIST2 = JSON.stringify(listResponse(2, TOOLS));
const SPLIT = [LIST2.slice(0, LIST2.indexOf('"id"')), LIST2.slice(LIST2.indexOf('"id"'))];
const BROKEN = [LIST2.slice(0, LIST2.indexOf('sult')), LIST2.slice(LIST2.indexOf('sult'))];

// A stream as an SDK server writes it, plus the variants SSE allows.
const IN = [
  ': keepalive\n\n',
  ev(['event: message', data({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1, message: 'é😀' } })]),
  ev(['event: message', 'id: 42', data(listResponse(3))]), // another request's response: untouched
  ev(['id: 43', 'event: message', data(listResponse(2)), ': trailing comment'], '\r\n'), // the one to filter, CRLF
  'data: not json\n\n',
  ev(['event: message', `data:${SPLIT[0]}`, `data:${SPLIT[1]}`], '\r'), // JSON split over two data lines, CR only: joined with LF, still JSON
  ev(['event: message', `data:${BROKEN[0]}`, `data:${BROKEN[1]}`]), // split inside a string: the LF makes it invalid JSON for every client, untouched
  'retry: 1000\n\n',
];
const OUT = [
  IN[0],
  IN[1],
  IN[2],
  ev(['id: 43', 'event: message', data(listResponse(2, KEPT)), ': trailing comment'], '\r\n'),
  IN[4],
  ev(['event: message', data(listResponse(2, KEPT))], '\r'),
  IN[6],
  IN[7],
];

t.test('SSE: only matching responses are rewritten, byte for byte otherwise', async (t) => {
  const ids = new Set<string | number>([2]);
  const input = Buffer.from(IN.join(''), 'utf8');
  const expected = Buffer.from(OUT.join(''), 'utf8');
  t.equal(feed([input], ids).out.toString('utf8'), expected.toString('utf8'), 'one chunk');
  t.equal(feed([...input].map((x) => Buffer.from([x])), ids).out.toString('utf8'), expected.toString('utf8'), 'one byte per chunk');
  let failures = 0;
  for (let i = 1; i < input.length; i++) {
    const { out } = feed([input.subarray(0, i), input.subarray(i)], ids);
    if (!out.equals(expected)) failures++;
  }
  t.equal(failures, 0, `split at each of ${input.length - 1} byte boundaries`);
  let threeWay = 0;
  for (let i = 1; i < input.length; i += 7) {
    for (let j = i + 1; j < input.length; j += 13) {
      if (!feed([input.subarray(0, i), input.subarray(i, j), input.subarray(j)], ids).out.equals(expected)) threeWay++;
    }
  }
  t.equal(threeWay, 0, 'three-way splits');
  t.equal(feed([input], new Set([5])).out.toString('utf8'), input.toString('utf8'), 'no matching id: the stream is untouched');
});

t.test('SSE: events pass on as soon as they are complete (streaming holds)', async (t) => {
  const f = new ToolsListSseFilter(new Set([2]), allowed);
  const first = Buffer.from(IN[0]! + IN[1]!);
  t.equal(f.write(first)?.toString('utf8'), IN[0]! + IN[1]!, 'complete non-matching events are returned by the same write');
  const matching = Buffer.from(IN[3]!);
  t.equal(f.write(matching.subarray(0, 20)), undefined, 'an unfinished event is held');
  t.equal(f.write(matching.subarray(20, matching.length - 2)), undefined, 'still unfinished: no blank line yet');
  t.equal(f.write(matching.subarray(matching.length - 2))?.toString('utf8'), OUT[3], 'the blank line releases it, filtered');
  const progress = Buffer.from(IN[1]!);
  t.equal(f.write(progress)?.toString('utf8'), IN[1], 'later events still flow one by one');
  t.equal(f.write(Buffer.from('data: x\r')), undefined, 'a trailing CR waits: it may be half of a CRLF');
  t.equal(f.write(Buffer.from('\r'))?.toString('utf8'), 'data: x\r\r', 'CR CR ends the event, even with the blank line\'s CR last in the chunk');
  t.equal(f.write(Buffer.from('\n'))?.toString('utf8'), '\n', 'an LF completing that CRLF passes straight on');
  t.equal(f.write(Buffer.from('data: y\n\n'))?.toString('utf8'), 'data: y\n\n', 'the next event is whole');
  t.equal(f.end(), undefined, 'nothing left');
});

t.test('SSE: any-id mode (GET streams) filters every response carrying result.tools', async (t) => {
  const input = Buffer.from(IN.join(''), 'utf8');
  const out = feed([input], undefined).out.toString('utf8');
  t.equal(out, [IN[0], IN[1], ev(['event: message', 'id: 42', data(listResponse(3, KEPT))]), OUT[3], IN[4], OUT[5], IN[6], IN[7]].join(''));
});

t.test('SSE: a BOM before the first event is not a way around the filter', async (t) => {
  const input = Buffer.from('\ufeff' + ev([data(listResponse(1))]), 'utf8');
  t.equal(feed([input], new Set([1])).out.toString('utf8'), '\ufeff' + ev([data(listResponse(1, KEPT))]));
  const later = Buffer.from(': c\n\n' + '\ufeff' + ev([data(listResponse(1))]), 'utf8');
  t.equal(feed([later], new Set([1])).out.equals(later), true, 'a BOM later in the stream makes the field name "\\ufeffdata": not data, untouched (clients do the same)');
});

t.test('SSE: an unterminated final event is filtered too', async (t) => {
  const input = Buffer.from(`event: message\n${data(listResponse(1))}\n`, 'utf8');
  t.equal(feed([input], new Set([1])).out.toString('utf8'), `event: message\n${data(listResponse(1, KEPT))}\n`);
  const bare = Buffer.from(data(listResponse(1)), 'utf8');
  t.equal(feed([bare], new Set([1])).out.toString('utf8'), data(listResponse(1, KEPT)));
});

t.test('SSE: data field forms (WHATWG): "data" alone, no space, two spaces', async (t) => {
  const json = JSON.stringify(listResponse(1));
  const rows: Array<[string, string, string]> = [
    ['no space after the colon', `data:${json}\n\n`, `${data(listResponse(1, KEPT))}\n\n`],
    ['a lone "data" line adds a leading LF: still JSON', `data\ndata:${json}\n\n`, `${data(listResponse(1, KEPT))}\n\n`],
    ['two spaces keep one: still JSON', `data:  ${json}\n\n`, `${data(listResponse(1, KEPT))}\n\n`],
    ['"data :" is another field', `data :${json}\n\n`, `data :${json}\n\n`],
    ['"Data:" is another field (case)', `Data: ${json}\n\n`, `Data: ${json}\n\n`],
  ];
  for (const [name, input, expected] of rows) t.equal(feed([Buffer.from(input)], new Set([1])).out.toString('utf8'), expected, name);
});

t.test('SSE: an event over the cap is refused, never sent unfiltered', async (t) => {
  const f = new ToolsListSseFilter(new Set([1]), allowed, 64);
  t.equal(f.write(Buffer.from(': ok\n\n'))?.toString(), ': ok\n\n', 'small events pass');
  let caught: unknown;
  try {
    f.write(Buffer.from(`data: ${'x'.repeat(100)}`));
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof ToolsListFilterError, 'an unfinished event beyond the cap throws ToolsListFilterError');
  const g = new ToolsListSseFilter(new Set([1]), allowed, 64);
  t.equal(g.write(Buffer.from(`data: ${'x'.repeat(50)}`)), undefined);
  t.throws(() => g.write(Buffer.from('y'.repeat(20))), { code: 'ERR_TOOLS_LIST_UNFILTERABLE' }, 'across chunks too');
});

t.test('ToolsListSseTransform', async (t) => {
  const run = async (chunks: Buffer[], max?: number): Promise<{ out: string, error: Error | undefined }> => {
    const tr = new ToolsListSseTransform(new Set([2]), allowed, max);
    const out: Buffer[] = [];
    tr.on('data', (c: Buffer) => { out.push(c); });
    const done = new Promise<Error | undefined>((resolve) => {
      tr.on('end', () => resolve(undefined));
      tr.on('error', (e) => resolve(e));
    });
    for (const c of chunks) tr.write(c);
    tr.end();
    const error = await done;
    return { out: Buffer.concat(out).toString('utf8'), error };
  };
  const input = Buffer.from(IN.join(''), 'utf8');
  const r = await run([input.subarray(0, 100), input.subarray(100)]);
  t.equal(r.error, undefined);
  t.equal(r.out, OUT.join(''), 'same result as the scanner');
  const big = await run([Buffer.from(`data: ${'x'.repeat(200)}`)], 64);
  t.type(big.error, ToolsListFilterError, 'an over-cap event errors the stream');
});
