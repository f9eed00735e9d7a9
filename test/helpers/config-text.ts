/** The smallest valid gateway config, as YAML text, for tests that add keys to it. */
export const MINIMAL_CONFIG = `publicUrl: https://gw.example.com
authorizationServers:
  - issuer: https://as.example.com
routes:
  - path: /mcp
    upstream: http://127.0.0.1:3001
    scopes: [mcp]
`
