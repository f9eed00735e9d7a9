/** A required environment variable of a bench child process; throws when unset or empty. */
export function requiredEnv (name: string): string {
  const v = process.env[name]
  if (v === undefined || v === '') throw new Error(`${name} is not set`)
  return v
}
