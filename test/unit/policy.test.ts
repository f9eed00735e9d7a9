/**
 * Per-operation policy: glob matching, compile (unions in a fixed order,
 * memoisation), and decisions for single messages, batches and body-less
 * requests. Fail closed: every matching entry applies, a batch passes only if
 * every element does.
 */
import t from 'tap';

import type { PolicyConfig } from '../../src/config/types.js';
import type { Principal } from '../../src/auth/principal.js';
import { parseJsonRpc, type JsonRpcMessage } from '../../src/mcp/jsonrpc.js';
import { compileGlob, compilePolicy } from '../../src/policy/compile.js';
import { allows, evaluate, evaluateNoBody, mayCallTool, requiredFor } from '../../src/policy/evaluate.js';

function policyConfig(p: Partial<Omit<PolicyConfig, 'methods'>> & { methods?: Record<string, string[]> } = {}): PolicyConfig {
  return {
    default: p.default ?? [],
    methods: new Map(Object.entries(p.methods ?? {})),
    tools: p.tools ?? [],
    resources: p.resources ?? [],
    prompts: p.prompts ?? [],
    filterToolsList: p.filterToolsList ?? (p.tools ?? []).length > 0,
  };
}

function principal(scopes: string[]): Principal {
  return {
    subject: 'alice',
    clientId: 'c',
    issuer: 'https://as.example.com',
    scopes: new Set(scopes),
    scopeString: scopes.join(' '),
    roles: new Set(),
    roleString: '',
    claims: { sub: 'alice' },
    expiresAtMs: Date.now() + 60_000,
  };
}

function messages(text: string): JsonRpcMessage[] {
  const r = parseJsonRpc(Buffer.from(text, 'utf8'));
  if (!r.ok) throw new Error(`test body must be valid: ${text}`);
  return [...r.messages];
}

/** The issue's example policy. */
const ISSUE = policyConfig({
  default: ['mcp:access'],
  methods: { 'tools/call': ['mcp:tools'], 'resources/read': ['mcp:read'] },
  tools: [['delete_node', ['mcp:admin']], ['search_*', ['mcp:read']]],
  resources: [['drupal://node/*', ['mcp:read']]],
  prompts: [['summarize', ['mcp:tools']]],
});

t.test('compileGlob: * only, everything else literal', async (t) => {
  const rows: Array<[string, string, boolean]> = [
    ['search_*', 'search_docs', true],
    ['search_*', 'search_', true],
    ['search_*', 'search', false],
    ['search_*', 'xsearch_docs', false],
    ['search_*', 'Search_docs', false],
    ['*_node', 'delete_node', true],
    ['*_node', 'delete_node2', false],
    ['*', '', true],
    ['*', 'anything/at:all', true],
    ['**', 'x', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'a123b456c', true],
    ['a*b*c', 'acb', false],
    ['a*b*c', 'abcb', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['ab*ba', 'aba', false],
    ['ab*ba', 'abba', true],
    ['*ab*ab*', 'xabyab', true],
    ['*ab*ab*', 'xaby', false],
    ['drupal://node/*', 'drupal://node/1', true],
    ['drupal://node/*', 'drupal://node/1/revisions/2', true],
    ['drupal://node/*', 'drupal://node', false],
    ['drupal://node/*', 'drupal://user/1', false],
    ['file.*', 'file.txt', true],
    ['file.*', 'fileXtxt', false],
    ['a?c', 'abc', false],
    ['a?c', 'a?c', true],
    ['[ab]*', 'a', false],
    ['[ab]*', '[ab]x', true],
    ['(x)+*', '(x)+y', true],
    ['(x)+*', 'xx', false],
    ['^$*', '^$', true],
    ['back\\slash*', 'back\\slash1', true],
    ['multi\nline*', 'multi\nline!', true],
    ['exact', 'exact', true],
    ['exact', 'exact ', false],
    ['é*😀', 'élan😀', true],
  ];
  for (const [pattern, name, expected] of rows) {
    t.equal(compileGlob(pattern)(name), expected, `${JSON.stringify(pattern)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(name)}`);
  }
});

t.test('compileGlob: linear time on hostile names (no backtracking blow-up)', async (t) => {
  const match = compileGlob('*a*a*a*a*a*a*a*a*b');
  const name = 'a'.repeat(200_000);
  const start = performance.now();
  t.equal(match(name), false);
  t.equal(match(name + 'b'), true);
  const ms = performance.now() - start;
  // A backtracking matcher needs on the order of n^8 steps here (never finishes); a linear one a few
  // ms. The bound is loose so a slow, shared CI machine cannot trip it.
  t.ok(ms < 2000, `took ${ms.toFixed(1)} ms`);
});

t.test('required scopes: union of every matching entry, in a fixed order', async (t) => {
  const p = compilePolicy(ISSUE, ['mcp:route']);
  const rows: Array<[string, string | undefined, string | undefined, string[]]> = [
    ['response (no method)', undefined, undefined, ['mcp:route', 'mcp:access']],
    ['tools/list', 'tools/list', undefined, ['mcp:route', 'mcp:access']],
    ['initialize', 'initialize', undefined, ['mcp:route', 'mcp:access']],
    ['tools/call of an unlisted tool', 'tools/call', 'echo', ['mcp:route', 'mcp:access', 'mcp:tools']],
    ['tools/call delete_node', 'tools/call', 'delete_node', ['mcp:route', 'mcp:access', 'mcp:tools', 'mcp:admin']],
    ['tools/call search_docs (glob)', 'tools/call', 'search_docs', ['mcp:route', 'mcp:access', 'mcp:tools', 'mcp:read']],
    ['tools/call search (glob needs the underscore)', 'tools/call', 'search', ['mcp:route', 'mcp:access', 'mcp:tools']],
    ['tools/call DELETE_NODE (case-sensitive)', 'tools/call', 'DELETE_NODE', ['mcp:route', 'mcp:access', 'mcp:tools']],
    ['resources/read matching', 'resources/read', 'drupal://node/7', ['mcp:route', 'mcp:access', 'mcp:read']],
    ['resources/read other', 'resources/read', 'file:///etc/passwd', ['mcp:route', 'mcp:access', 'mcp:read']],
    ['resources/subscribe matching (no method entry)', 'resources/subscribe', 'drupal://node/7', ['mcp:route', 'mcp:access', 'mcp:read']],
    ['resources/subscribe other', 'resources/subscribe', 'x://y', ['mcp:route', 'mcp:access']],
    ['resources/unsubscribe matching', 'resources/unsubscribe', 'drupal://node/1', ['mcp:route', 'mcp:access', 'mcp:read']],
    ['prompts/get summarize', 'prompts/get', 'summarize', ['mcp:route', 'mcp:access', 'mcp:tools']],
    ['prompts/get other', 'prompts/get', 'other', ['mcp:route', 'mcp:access']],
    ['tools/call name matched against tools only (a prompt name)', 'tools/call', 'summarize', ['mcp:route', 'mcp:access', 'mcp:tools']],
    ['a method whose name embeds a NUL never shares a memo entry', 'tools/call\u0000delete_node', undefined, ['mcp:route', 'mcp:access']],
  ];
  for (const [name, method, target, expected] of rows) {
    t.strictSame(p.required(method, target), expected, name);
    t.strictSame(p.required(method, target), expected, `${name} (memoised)`);
  }
  t.strictSame(p.required('tools/call', 'delete_node'), ['mcp:route', 'mcp:access', 'mcp:tools', 'mcp:admin'], 'still right after the NUL-method lookup');
  t.equal(p.required('tools/call', 'delete_node'), p.required('tools/call', 'delete_node'), 'the memoised list is the same array');
  t.ok(Object.isFrozen(p.required('tools/call', 'delete_node')), 'memoised lists are frozen');
  t.strictSame(p.base, ['mcp:route', 'mcp:access']);
});

t.test('every matching entry applies (exact and several globs), duplicates once', async (t) => {
  const p = compilePolicy(policyConfig({
    default: ['a'],
    methods: { 'tools/call': ['a', 't'] },
    tools: [['*', ['any']], ['delete_*', ['d']], ['delete_node', ['x', 'd']], ['*_node', ['n']], ['delete_node', ['again']]],
  }), ['a']);
  t.strictSame(p.required('tools/call', 'delete_node'), ['a', 't', 'x', 'd', 'again', 'any', 'n'], 'route/default, method, exact entries, then globs in config order');
  t.strictSame(p.required('tools/call', 'list_node'), ['a', 't', 'any', 'n']);
  t.strictSame(p.required('tools/call', ''), ['a', 't', 'any']);
});

t.test('fail closed: default [] still requires the route scopes; nothing configured needs nothing more', async (t) => {
  const p = compilePolicy(policyConfig({ default: [] }), ['mcp:access']);
  t.strictSame(p.required('tools/call', 'anything'), ['mcp:access']);
  t.strictSame(p.base, ['mcp:access']);
  const bare = compilePolicy(policyConfig({ default: [] }), []);
  t.strictSame(bare.required('tools/call', 'x'), []);
  t.equal(evaluate(bare, principal([]), messages('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}')).allow, true, 'an explicit empty policy allows any authenticated caller');
});

t.test('memo is bounded and stays correct past its bound', async (t) => {
  const p = compilePolicy(ISSUE, [], 2);
  const names = ['delete_node', 'search_a', 'echo', 'search_b', 'delete_node', 'echo'];
  for (let round = 0; round < 3; round++) {
    for (const n of names) {
      const expected = n === 'delete_node' ? ['mcp:access', 'mcp:tools', 'mcp:admin'] : n.startsWith('search_') ? ['mcp:access', 'mcp:tools', 'mcp:read'] : ['mcp:access', 'mcp:tools'];
      t.strictSame(p.required('tools/call', n), expected, `round ${round} ${n}`);
    }
  }
  for (let i = 0; i < 5; i++) t.strictSame(p.required(`custom/${i}`, undefined), ['mcp:access'], `unnamed method ${i}`);
  for (let i = 0; i < 50; i++) p.required('tools/call', `random_${i}`);
  t.strictSame(p.memoSizes(), [2, 2, 0, 0, 0, 0], 'each table holds at most its bound');
  const big = compilePolicy(ISSUE, []);
  for (let i = 0; i < 5000; i++) big.required('tools/call', `random_${i}`);
  t.ok(big.memoSizes().every((n) => n <= 1024), `default bound 1024: ${big.memoSizes().join(',')}`);
  t.equal(big.memoSizes()[1], 1024);
});

t.test('evaluate: decisions with needed and missing scopes', async (t) => {
  const p = compilePolicy(ISSUE, ['mcp:access']);
  const call = (name: string): string => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } });
  const rows: Array<{ name: string, body: string, scopes: string[], allow: boolean, needed: string[], missing: string[] }> = [
    { name: 'tools/list with mcp:access', body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', scopes: ['mcp:access'], allow: true, needed: ['mcp:access'], missing: [] },
    { name: 'tools/list without any scope', body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}', scopes: [], allow: false, needed: ['mcp:access'], missing: ['mcp:access'] },
    { name: 'echo with mcp:tools', body: call('echo'), scopes: ['mcp:access', 'mcp:tools'], allow: true, needed: ['mcp:access', 'mcp:tools'], missing: [] },
    { name: 'echo without mcp:tools', body: call('echo'), scopes: ['mcp:access'], allow: false, needed: ['mcp:access', 'mcp:tools'], missing: ['mcp:tools'] },
    { name: 'delete_node without mcp:admin', body: call('delete_node'), scopes: ['mcp:access', 'mcp:tools'], allow: false, needed: ['mcp:access', 'mcp:tools', 'mcp:admin'], missing: ['mcp:admin'] },
    { name: 'delete_node with only mcp:admin', body: call('delete_node'), scopes: ['mcp:admin'], allow: false, needed: ['mcp:access', 'mcp:tools', 'mcp:admin'], missing: ['mcp:access', 'mcp:tools'] },
    { name: 'delete_node with all', body: call('delete_node'), scopes: ['mcp:access', 'mcp:tools', 'mcp:admin'], allow: true, needed: ['mcp:access', 'mcp:tools', 'mcp:admin'], missing: [] },
    { name: 'search_docs (glob) without mcp:read', body: call('search_docs'), scopes: ['mcp:access', 'mcp:tools'], allow: false, needed: ['mcp:access', 'mcp:tools', 'mcp:read'], missing: ['mcp:read'] },
    { name: 'notification: default and its method', body: '{"jsonrpc":"2.0","method":"notifications/initialized"}', scopes: ['mcp:access'], allow: true, needed: ['mcp:access'], missing: [] },
    { name: 'notification named like tools/call is checked like one', body: '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_node"}}', scopes: ['mcp:access', 'mcp:tools'], allow: false, needed: ['mcp:access', 'mcp:tools', 'mcp:admin'], missing: ['mcp:admin'] },
    { name: 'response: default only', body: '{"jsonrpc":"2.0","id":3,"result":{}}', scopes: ['mcp:access'], allow: true, needed: ['mcp:access'], missing: [] },
    {
      name: 'batch: union; one denied element denies all',
      body: `[${call('echo')},${call('delete_node')},{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"drupal://node/1"}}]`,
      scopes: ['mcp:access', 'mcp:tools', 'mcp:read'],
      allow: false,
      needed: ['mcp:access', 'mcp:tools', 'mcp:admin', 'mcp:read'],
      missing: ['mcp:admin'],
    },
    {
      name: 'batch: every element allowed',
      body: `[${call('echo')},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]`,
      scopes: ['mcp:access', 'mcp:tools'],
      allow: true,
      needed: ['mcp:access', 'mcp:tools'],
      missing: [],
    },
  ];
  for (const row of rows) {
    const d = evaluate(p, principal(row.scopes), messages(row.body));
    t.equal(d.allow, row.allow, `${row.name}: allow`);
    t.strictSame(d.needed, row.needed, `${row.name}: needed`);
    t.strictSame(d.missing, row.missing, `${row.name}: missing`);
  }
});

t.test('evaluateNoBody: route scopes and default', async (t) => {
  const p = compilePolicy(ISSUE, ['mcp:route']);
  t.strictSame(evaluateNoBody(p, principal(['mcp:route', 'mcp:access'])), { allow: true, needed: ['mcp:route', 'mcp:access'], missing: [] });
  t.strictSame(evaluateNoBody(p, principal(['mcp:route'])), { allow: false, needed: ['mcp:route', 'mcp:access'], missing: ['mcp:access'] });
  t.strictSame(evaluateNoBody(p, principal(['mcp:access', 'mcp:admin'])), { allow: false, needed: ['mcp:route', 'mcp:access'], missing: ['mcp:route'] });
});

t.test('allows, requiredFor and mayCallTool', async (t) => {
  const p = compilePolicy(ISSUE, []);
  const [echo, del] = messages('[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_node"}}]');
  const who = principal(['mcp:access', 'mcp:tools']);
  t.equal(allows(p, who, echo!), true);
  t.equal(allows(p, who, del!), false);
  t.strictSame(requiredFor(p, del!), ['mcp:access', 'mcp:tools', 'mcp:admin']);
  const rows: Array<[string, string[], boolean]> = [
    ['echo', ['mcp:access', 'mcp:tools'], true],
    ['echo', ['mcp:access'], false],
    ['delete_node', ['mcp:access', 'mcp:tools'], false],
    ['delete_node', ['mcp:access', 'mcp:tools', 'mcp:admin'], true],
    ['search_docs', ['mcp:access', 'mcp:tools'], false],
    ['search_docs', ['mcp:access', 'mcp:tools', 'mcp:read'], true],
  ];
  for (const [tool, scopes, expected] of rows) t.equal(mayCallTool(p, new Set(scopes), tool), expected, `${tool} with [${scopes.join(' ')}]`);
});
