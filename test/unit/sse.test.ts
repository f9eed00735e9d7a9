/**
 * Legacy HTTP+SSE: the first `endpoint` event is rewritten into the gateway's
 * path space; every other byte passes through untouched, however the stream
 * is chunked.
 */
import t from 'tap';

import { EndpointRewriter, rewriteEndpoint } from '../../src/mcp/sse.js';

const ORIGIN = 'http://u:1';

t.test('rewriteEndpoint', async (t) => {
  const rows: Array<{ data: string, upstreamPath: string, expected: string | undefined, origin?: string }> = [
    { data: '/messages?sessionId=1', upstreamPath: '', expected: '/gw/messages?sessionId=1' },
    { data: 'messages?sessionId=1', upstreamPath: '', expected: '/gw/messages?sessionId=1' },
    { data: '/', upstreamPath: '', expected: '/gw/' },
    { data: '/a/b/c?x=1&y=2', upstreamPath: '', expected: '/gw/a/b/c?x=1&y=2' },
    { data: 'http://u:1/messages?sessionId=1', upstreamPath: '', expected: '/gw/messages?sessionId=1' },
    { data: 'HTTP://U:1/messages', upstreamPath: '', expected: '/gw/messages' },
    { data: 'http://u/messages', upstreamPath: '', origin: 'http://u', expected: '/gw/messages' },
    { data: 'http://u:80/messages', upstreamPath: '', origin: 'http://u', expected: '/gw/messages' },
    { data: 'http://u:1/messages#frag', upstreamPath: '', expected: '/gw/messages' },
    { data: 'http://other:1/messages', upstreamPath: '', expected: undefined },
    { data: 'https://u:1/messages', upstreamPath: '', expected: undefined },
    { data: 'http://u:2/messages', upstreamPath: '', expected: undefined },
    { data: '//evil.example/messages', upstreamPath: '', expected: undefined },
    { data: 'javascript:alert(1)', upstreamPath: '', expected: undefined },
    { data: 'http://[', upstreamPath: '', expected: undefined },
    { data: '/mcp/messages?sessionId=1', upstreamPath: '/mcp', expected: '/gw/messages?sessionId=1' },
    { data: 'messages?sessionId=1', upstreamPath: '/mcp', expected: '/gw/messages?sessionId=1' },
    { data: '/mcp', upstreamPath: '/mcp', expected: '/gw' },
    { data: '/mcp/', upstreamPath: '/mcp', expected: '/gw/' },
    { data: 'http://u:1/mcp/messages', upstreamPath: '/mcp', expected: '/gw/messages' },
    { data: '/messages?sessionId=1', upstreamPath: '/mcp', expected: undefined },
    { data: '/mcpx/messages', upstreamPath: '/mcp', expected: undefined },
    { data: '/mcp/../admin', upstreamPath: '/mcp', expected: undefined },
    { data: '../admin', upstreamPath: '/mcp', expected: undefined },
    { data: 'http://u:1/admin', upstreamPath: '/mcp', expected: undefined },
    { data: '/mcp/a/../messages', upstreamPath: '/mcp', expected: '/gw/messages' },
  ];
  for (const row of rows) {
    const origin = row.origin ?? ORIGIN;
    t.equal(rewriteEndpoint(row.data, origin, row.upstreamPath, '/gw'), row.expected, `${JSON.stringify(row.data)} (origin ${origin}, base ${JSON.stringify(row.upstreamPath)}) → ${row.expected ?? 'undefined'}`);
  }
});

type Rewrite = (data: string) => string | undefined;
const rewriteRoot: Rewrite = (d) => rewriteEndpoint(d, ORIGIN, '', '/gw');

async function run(chunks: Buffer[], rewrite: Rewrite = rewriteRoot, maxScanBytes = 64 * 1024): Promise<{ out: Buffer, endpoint: string | undefined, pushes: number }> {
  const r = new EndpointRewriter(rewrite, maxScanBytes);
  const out: Buffer[] = [];
  r.on('data', (c: Buffer) => { out.push(Buffer.from(c)); });
  const ended = new Promise<void>((resolve, reject) => {
    r.on('end', resolve);
    r.on('error', reject);
  });
  for (const c of chunks) r.write(c);
  r.end();
  await ended;
  return { out: Buffer.concat(out), endpoint: r.endpoint, pushes: out.length };
}

/** Every split of `input` into two chunks, plus one byte per chunk, plus one chunk. */
function chunkings(input: Buffer): Buffer[][] {
  const all: Buffer[][] = [[input]];
  for (let i = 1; i < input.length; i++) all.push([input.subarray(0, i), input.subarray(i)]);
  all.push(Array.from(input, (b) => Buffer.from([b])));
  return all;
}

interface StreamRow {
  name: string;
  input: string;
  expected: string;
  endpoint: string | undefined;
  rewrite?: Rewrite;
}

const LATER = 'event: message\ndata: {"jsonrpc":"2.0","result":{"text":"héllo 😀 wörld"}}\n\n';

const streamRows: StreamRow[] = [
  {
    name: 'endpoint first, multi-byte characters in a later event',
    input: 'event: endpoint\ndata: /messages?sessionId=abc\n\n' + LATER,
    expected: 'event: endpoint\ndata: /gw/messages?sessionId=abc\n\n' + LATER,
    endpoint: '/gw/messages?sessionId=abc',
  },
  {
    name: 'keep-alive comments before the endpoint pass through',
    input: ': ping\n\n:another comment 😀\n\nevent: endpoint\ndata: /messages?sessionId=1\n\n' + LATER,
    expected: ': ping\n\n:another comment 😀\n\nevent: endpoint\ndata: /gw/messages?sessionId=1\n\n' + LATER,
    endpoint: '/gw/messages?sessionId=1',
  },
  {
    name: 'first event is not endpoint: stream unchanged',
    input: LATER + 'event: endpoint\ndata: /messages?sessionId=1\n\n',
    expected: LATER + 'event: endpoint\ndata: /messages?sessionId=1\n\n',
    endpoint: undefined,
  },
  {
    name: 'a data-only first event is not an endpoint event',
    input: 'data: /messages?sessionId=1\n\nevent: endpoint\ndata: /messages?sessionId=2\n\n',
    expected: 'data: /messages?sessionId=1\n\nevent: endpoint\ndata: /messages?sessionId=2\n\n',
    endpoint: undefined,
  },
  {
    name: 'only the first endpoint event is rewritten',
    input: 'event: endpoint\ndata: /messages?sessionId=1\n\nevent: endpoint\ndata: /messages?sessionId=2\n\n',
    expected: 'event: endpoint\ndata: /gw/messages?sessionId=1\n\nevent: endpoint\ndata: /messages?sessionId=2\n\n',
    endpoint: '/gw/messages?sessionId=1',
  },
  {
    name: 'CRLF line endings',
    input: 'event: endpoint\r\ndata: /messages?sessionId=1\r\n\r\nevent: message\r\ndata: é\r\n\r\n',
    expected: 'event: endpoint\r\ndata: /gw/messages?sessionId=1\r\n\r\nevent: message\r\ndata: é\r\n\r\n',
    endpoint: '/gw/messages?sessionId=1',
  },
  {
    name: 'CRLF comment before the endpoint',
    input: ': ka\r\n\r\nevent: endpoint\r\ndata: /m\r\n\r\n',
    expected: ': ka\r\n\r\nevent: endpoint\r\ndata: /gw/m\r\n\r\n',
    endpoint: '/gw/m',
  },
  {
    name: 'CR line endings',
    input: 'event: endpoint\rdata: /messages\r\rdata: x\r\r',
    expected: 'event: endpoint\rdata: /gw/messages\r\rdata: x\r\r',
    endpoint: '/gw/messages',
  },
  {
    name: '`event:endpoint` and `data:` without a space',
    input: 'event:endpoint\ndata:/messages?sessionId=1\n\n',
    expected: 'event:endpoint\ndata: /gw/messages?sessionId=1\n\n',
    endpoint: '/gw/messages?sessionId=1',
  },
  {
    name: 'data before event and an id line',
    input: 'id: 7\ndata: /messages?sessionId=1\nevent: endpoint\n\n',
    expected: 'id: 7\ndata: /gw/messages?sessionId=1\nevent: endpoint\n\n',
    endpoint: '/gw/messages?sessionId=1',
  },
  {
    name: 'absolute same-origin endpoint',
    input: 'event: endpoint\ndata: http://u:1/messages?sessionId=1\n\n',
    expected: 'event: endpoint\ndata: /gw/messages?sessionId=1\n\n',
    endpoint: '/gw/messages?sessionId=1',
  },
  {
    name: 'endpoint on another origin is left alone',
    input: 'event: endpoint\ndata: http://elsewhere:9/messages\n\n' + LATER,
    expected: 'event: endpoint\ndata: http://elsewhere:9/messages\n\n' + LATER,
    endpoint: undefined,
  },
  {
    name: 'endpoint outside the upstream base path is left alone',
    input: 'event: endpoint\ndata: /messages?sessionId=1\n\n',
    expected: 'event: endpoint\ndata: /messages?sessionId=1\n\n',
    endpoint: undefined,
    rewrite: (d) => rewriteEndpoint(d, ORIGIN, '/mcp', '/gw'),
  },
  {
    name: 'upstream base path is replaced by the route path',
    input: 'event: endpoint\ndata: /mcp/messages?sessionId=1\n\n',
    expected: 'event: endpoint\ndata: /gw/messages?sessionId=1\n\n',
    endpoint: '/gw/messages?sessionId=1',
    rewrite: (d) => rewriteEndpoint(d, ORIGIN, '/mcp', '/gw'),
  },
  {
    name: '"event: endpoints" is not an endpoint event',
    input: 'event: endpoints\ndata: /messages\n\n',
    expected: 'event: endpoints\ndata: /messages\n\n',
    endpoint: undefined,
  },
  {
    name: 'stream ends before the first event is complete: flushed unchanged',
    input: ': ka\n\nevent: endpoint\ndata: /messages',
    expected: ': ka\n\nevent: endpoint\ndata: /messages',
    endpoint: undefined,
  },
  {
    name: 'empty stream',
    input: '',
    expected: '',
    endpoint: undefined,
  },
];

for (const row of streamRows) {
  t.test(`EndpointRewriter: ${row.name}`, async (t) => {
    const input = Buffer.from(row.input, 'utf8');
    const expected = Buffer.from(row.expected, 'utf8');
    const splits = chunkings(input);
    let failures = 0;
    for (const chunks of splits) {
      const { out, endpoint } = await run(chunks, row.rewrite);
      if (!out.equals(expected) || endpoint !== row.endpoint) {
        failures++;
        if (failures <= 3) {
          t.fail(`chunks ${JSON.stringify(chunks.map((c) => c.length))}`, { found: out.toString('utf8'), wanted: row.expected, endpoint });
        }
      }
    }
    t.equal(failures, 0, `output is exact for all ${splits.length} chunkings`);
    const whole = await run([input], row.rewrite);
    t.equal(whole.out.toString('utf8'), row.expected, 'single chunk');
    t.equal(whole.endpoint, row.endpoint, 'endpoint property');
  });
}

t.test('EndpointRewriter: split inside a multi-byte character of a later event', async (t) => {
  const head = 'event: endpoint\ndata: /messages?sessionId=1\n\n';
  const tail = 'data: 😀\n\n';
  const input = Buffer.from(head + tail, 'utf8');
  const emoji = Buffer.byteLength(head) + Buffer.byteLength('data: ');
  for (let i = 1; i < 4; i++) {
    const cut = emoji + i;
    const { out } = await run([input.subarray(0, cut), input.subarray(cut)]);
    t.equal(out.toString('utf8'), 'event: endpoint\ndata: /gw/messages?sessionId=1\n\ndata: 😀\n\n', `cut ${i} bytes into the emoji`);
  }
  // Cut inside the emoji while the first event is still incomplete (no blank line yet).
  const input2 = Buffer.from(': 😀\n\nevent: endpoint\ndata: /m\n\n', 'utf8');
  const { out: out2 } = await run([input2.subarray(0, 4), input2.subarray(4)]);
  t.equal(out2.toString('utf8'), ': 😀\n\nevent: endpoint\ndata: /gw/m\n\n');
});

t.test('EndpointRewriter: no blank line within maxScanBytes → passes through unchanged', async (t) => {
  const max = 32;
  const longLine = 'data: ' + 'x'.repeat(40) + '\n';
  const input = longLine + 'event: endpoint\ndata: /messages\n\n' + LATER;
  // Fed in small chunks, the pending buffer exceeds the limit before any event completes.
  const chunks: Buffer[] = [];
  const buf = Buffer.from(input);
  for (let i = 0; i < buf.length; i += 5) chunks.push(buf.subarray(i, i + 5));
  const { out, endpoint } = await run(chunks, rewriteRoot, max);
  t.equal(out.toString('utf8'), input, 'unchanged, including the later endpoint event');
  t.equal(endpoint, undefined);

  // A stream that is all comments and never sends an event is not held back.
  const r = new EndpointRewriter(rewriteRoot, max);
  const seen: string[] = [];
  r.on('data', (c: Buffer) => { seen.push(c.toString('utf8')); });
  r.write(Buffer.from(': ping\n\n'));
  r.write(Buffer.from('data: ' + 'y'.repeat(max)));
  t.strictSame(seen, [': ping\n\n', 'data: ' + 'y'.repeat(max)], 'pending bytes are released once the limit is exceeded, before the stream ends');
  r.end();
});

t.test('EndpointRewriter: bytes are released as soon as the first event is complete', async (t) => {
  const r = new EndpointRewriter(rewriteRoot, 1024);
  const seen: string[] = [];
  r.on('data', (c: Buffer) => { seen.push(c.toString('utf8')); });
  r.write(Buffer.from('event: endpoint\n'));
  t.strictSame(seen, [], 'held back while the first event is incomplete');
  r.write(Buffer.from('data: /m\n\nda'));
  t.equal(seen.join(''), 'event: endpoint\ndata: /gw/m\n\nda', 'released with the rest of the chunk');
  r.write(Buffer.from('ta: z\n\n'));
  t.equal(seen.at(-1), 'ta: z\n\n', 'after the first event, chunks pass straight through');
  t.equal(seen.join(''), 'event: endpoint\ndata: /gw/m\n\ndata: z\n\n');
  t.equal(r.endpoint, '/gw/m');
  r.end();
});
