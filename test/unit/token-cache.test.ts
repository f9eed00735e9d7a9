/**
 * Verified-token cache: bounded, exact match on the token, second-chance eviction; no entry outlives exp.
 */
import { createHash } from 'node:crypto';

import t from 'tap';

import type { Principal } from '../../src/auth/principal.js';
import { TokenCache, tokenKey } from '../../src/auth/token-cache.js';

function principal(subject: string, expiresAtMs: number): Principal {
  return Object.freeze({
    subject,
    clientId: undefined,
    issuer: 'https://as.example.com',
    scopes: new Set<string>(),
    scopeString: '',
    roles: new Set<string>(),
    roleString: '',
    claims: { sub: subject },
    expiresAtMs,
  });
}

const NOW = 1_000_000;
const LATER = NOW + 60_000;

t.test('tokenKey', async (t) => {
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl';
  const key = tokenKey(token);
  t.equal(key, createHash('sha256').update(token).digest('base64url'), 'sha256, base64url');
  t.equal(key.length, 43, '43 characters');
  t.match(key, /^[A-Za-z0-9_-]{43}$/, 'base64url alphabet, no padding');
  t.notOk(key.includes(token), 'does not contain the token');
  t.notOk(key.includes('eyJ'), 'does not contain a token prefix');
  t.equal(tokenKey(token), key, 'deterministic');
  t.not(tokenKey(token + 'x'), key, 'different tokens, different keys');
  t.equal(tokenKey(''), '47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU', 'known vector (empty string)');
  t.equal(tokenKey('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0', 'known vector (abc)');
});

t.test('get/set and counters', async (t) => {
  const c = new TokenCache(10);
  t.equal(c.size, 0);
  t.equal(c.get('a', NOW), undefined);
  t.equal(c.misses, 1);
  t.equal(c.hits, 0);
  const pa = principal('a', LATER);
  c.set('a', pa, NOW);
  t.equal(c.size, 1);
  t.equal(c.get('a', NOW), pa, 'same principal object');
  t.equal(c.get('a', NOW + 1), pa);
  t.equal(c.hits, 2);
  t.equal(c.misses, 1);
  t.equal(c.get('b', NOW), undefined);
  t.equal(c.misses, 2);
  const pa2 = principal('a2', LATER);
  c.set('a', pa2, NOW);
  t.equal(c.size, 1, 'replacing a key does not grow the cache');
  t.equal(c.get('a', NOW), pa2, 'replaced');
  c.clear();
  t.equal(c.size, 0);
  t.equal(c.get('a', NOW), undefined, 'cleared');
});

t.test('expiry at exp', async (t) => {
  const rows: Array<{ name: string, expiresAtMs: number, nowMs: number, hit: boolean }> = [
    { name: 'well before exp', expiresAtMs: LATER, nowMs: NOW, hit: true },
    { name: '1 ms before exp', expiresAtMs: LATER, nowMs: LATER - 1, hit: true },
    { name: 'exactly at exp', expiresAtMs: LATER, nowMs: LATER, hit: false },
    { name: 'after exp', expiresAtMs: LATER, nowMs: LATER + 1, hit: false },
  ];
  for (const row of rows) {
    t.test(row.name, async (t) => {
      const c = new TokenCache(10);
      c.set('k', principal('s', row.expiresAtMs), NOW);
      t.equal(c.size, 1, 'stored');
      const got = c.get('k', row.nowMs);
      t.equal(got !== undefined, row.hit, row.hit ? 'returned' : 'not returned');
      t.equal(c.size, row.hit ? 1 : 0, row.hit ? 'kept' : 'removed on lookup');
      t.equal(c.hits, row.hit ? 1 : 0);
      t.equal(c.misses, row.hit ? 0 : 1);
      if (!row.hit) t.equal(c.get('k', NOW), undefined, 'gone even for an earlier clock');
    });
  }
  t.test('an already-expired principal is never stored', async (t) => {
    const c = new TokenCache(10);
    c.set('k', principal('s', NOW), NOW);
    c.set('k2', principal('s', NOW - 1), NOW);
    t.equal(c.size, 0);
    c.set('k3', principal('s', NOW + 1), NOW);
    t.equal(c.size, 1);
  });
});

t.test('second-chance eviction order', async (t) => {
  const c = new TokenCache(3);
  c.set('a', principal('a', LATER), NOW);
  c.set('b', principal('b', LATER), NOW);
  c.set('c', principal('c', LATER), NOW);
  t.equal(c.size, 3);
  c.set('d', principal('d', LATER), NOW);
  t.equal(c.size, 3, 'bounded');
  t.equal(c.get('a', NOW), undefined, 'oldest unused (a) evicted');
  t.ok(c.get('b', NOW), 'b kept, and now marked used');
  // Insertion order: b (used), c, d. The used b gets a second chance; c is the oldest unused.
  c.set('e', principal('e', LATER), NOW);
  t.equal(c.get('c', NOW), undefined, 'c evicted, not the older but used b');
  t.ok(c.get('b', NOW), 'b survived');
  t.ok(c.get('d', NOW));
  t.ok(c.get('e', NOW));
  t.equal(c.size, 3);
  // All three used: each is passed over once (unmarked, moved back), then the oldest goes.
  c.set('f', principal('f', LATER), NOW);
  t.equal(c.size, 3, 'still bounded when every entry was used');
  t.equal(c.get('d', NOW), undefined, 'after one full pass, the oldest (d) is evicted');
  t.ok(c.get('f', NOW), 'the entry just stored is never the one evicted');
  // Re-setting a key replaces it in place of a new entry.
  c.set('b', principal('b2', LATER), NOW);
  t.equal(c.size, 3);
  t.equal(c.get('b', NOW)?.subject, 'b2');
});

t.test('one eviction examines a bounded number of entries', async (t) => {
  const n = 40;
  const c = new TokenCache(n);
  for (let i = 0; i < n; i++) c.set(`k${i}`, principal(`k${i}`, LATER), NOW);
  for (let i = 0; i < n; i++) t.ok(c.get(`k${i}`, NOW), `k${i} used`);
  c.set('new', principal('new', LATER), NOW);
  t.equal(c.size, n, 'bounded');
  // 16 used entries are passed over (moved back, unmarked); the 17th is evicted although used.
  const gone: string[] = [];
  for (let i = 0; i < n; i++) if (c.get(`k${i}`, NOW) === undefined) gone.push(`k${i}`);
  t.same(gone, ['k16'], 'exactly the first entry after 16 second chances');
  t.ok(c.get('new', NOW));
});

t.test('long tokens: bucketed by their end, matched whole', async (t) => {
  const c = new TokenCache(10);
  const tail = 'S'.repeat(32);
  const t1 = 'A'.repeat(100) + tail;
  const t2 = 'B'.repeat(100) + tail; // same last 32 characters: the same bucket
  const t3 = 'A'.repeat(99) + 'C' + tail;
  const p1 = principal('one', LATER);
  const p2 = principal('two', LATER);
  c.set(t1, p1, NOW);
  t.equal(c.get(t1, NOW), p1, 'the stored token hits');
  t.equal(c.get(t2, NOW), undefined, 'another token with the same end misses (never the other principal)');
  t.equal(c.get(t3, NOW), undefined, 'a token differing only in the middle misses');
  t.equal(c.get(t1.slice(1), NOW), undefined, 'a shorter token with the same end misses');
  c.set(t2, p2, NOW);
  t.equal(c.size, 1, 'a colliding valid token displaces the first');
  t.equal(c.get(t2, NOW), p2);
  t.equal(c.get(t1, NOW), undefined, 'the displaced token is a miss, then re-verified by the caller');
  // A token copied from a larger string (as header parsing does) still matches.
  const header = 'Bearer ' + t2 + ' ';
  t.equal(c.get(header.slice(7, -1), NOW), p2, 'a sliced copy of the same token hits');
});

t.test('a miss does not refresh recency', async (t) => {
  const c = new TokenCache(2);
  c.set('a', principal('a', LATER), NOW);
  c.set('b', principal('b', LATER), NOW);
  t.equal(c.get('zzz', NOW), undefined);
  c.set('c', principal('c', LATER), NOW);
  t.equal(c.get('a', NOW), undefined, 'a evicted');
  t.ok(c.get('b', NOW));
});

t.test('maxEntries 0 disables the cache', async (t) => {
  const c = new TokenCache(0);
  c.set('a', principal('a', LATER), NOW);
  t.equal(c.size, 0);
  t.equal(c.get('a', NOW), undefined);
  t.equal(c.misses, 1);
  t.equal(c.hits, 0);
});

t.test('maxEntries 1 keeps only the latest', async (t) => {
  const c = new TokenCache(1);
  c.set('a', principal('a', LATER), NOW);
  c.set('b', principal('b', LATER), NOW);
  t.equal(c.size, 1);
  t.equal(c.get('a', NOW), undefined);
  t.equal(c.get('b', NOW)?.subject, 'b');
});
