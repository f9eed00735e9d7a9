/**
 * The order in which a bench round runs the systems (bench/lib/stats.ts roundOrder).
 */
import t from 'tap'
import { roundOrder } from '../../bench/lib/stats.js'

t.test('roundOrder: the same order every round by default; with alternate, every even round reversed', async (t) => {
  const systems = ['floor', 'gateway', 'gateway-policy', 'gateway-introspection'] as const
  const cases: Array<[number, boolean, string[]]> = [
    [1, false, ['floor', 'gateway', 'gateway-policy', 'gateway-introspection']],
    [2, false, ['floor', 'gateway', 'gateway-policy', 'gateway-introspection']],
    [1, true, ['floor', 'gateway', 'gateway-policy', 'gateway-introspection']],
    [2, true, ['gateway-introspection', 'gateway-policy', 'gateway', 'floor']],
    [3, true, ['floor', 'gateway', 'gateway-policy', 'gateway-introspection']],
    [4, true, ['gateway-introspection', 'gateway-policy', 'gateway', 'floor']]
  ]
  for (const [round, alternate, expected] of cases) {
    t.same(roundOrder(systems, round, alternate), expected, `round ${round}, alternate ${String(alternate)}`)
  }
  const input = ['a', 'b']
  roundOrder(input, 2, true)
  t.same(input, ['a', 'b'], 'the caller\'s list is not reversed in place')
})
