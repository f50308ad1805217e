// The config the soak's `tinyedge serve` runs (bench/soak.ts): three tenants on one origin, with
// grace long enough to cover the origin's troubles, and two variants that a reload switches
// between (each changes the beta and gamma tenants, so a reload rebuilds them and reloads beta's
// program from its file).

export const OPERATOR_TOKEN = 'soak-operator-token-0123456789';
export const TENANT_TOKENS = { alpha: 'soak-alpha-token-0123456789', beta: 'soak-beta-token-0123456789', gamma: 'soak-gamma-token-0123456789' } as const;
export type TenantName = keyof typeof TENANT_TOKENS;
export const HOSTS: Record<TenantName, string> = { alpha: 'a.soak', beta: 'b.soak', gamma: 'g.soak' };

/** Grace every tenant gives objects: far longer than one origin fault phase. */
export const GRACE_S = 30;
/** Longest the cache and the sub-requests wait for the origin's first byte (the slow phase waits longer). */
export const FIRST_BYTE_TIMEOUT_MS = 1_000;

export interface SoakPrograms {
  /** test/guests/soak_app.c: beta's generator and hooks. */
  readonly app: string;
  /** test/guests/sdk_persistent.c: gamma's persistent program. */
  readonly persistent: string;
  /** test/guests/cgi_env.c: gamma's CGI program. */
  readonly cgi: string;
}

/**
 * The YAML for `variant` (0 or 1): they differ in beta's program timeout and gamma's key-value
 * quota only, so each reload changes both tenants and nothing else.
 */
export function soakConfig(originUrl: string, programs: SoakPrograms, variant: 0 | 1): string {
  const origin = (health: boolean): string => `    origins:
      - name: default
        url: ${originUrl}
        connectTimeout: 1s
        firstByteTimeout: ${FIRST_BYTE_TIMEOUT_MS}ms
        idleTimeout: 2s${health ? '\n        healthCheck: { path: /health, interval: 1s, timeout: 2s, threshold: 2 }' : ''}
    cache: { memory: 16MiB, defaultGrace: ${GRACE_S}s, defaultKeep: 60s }`;
  // queueTimeout 5s: on a loaded machine a request waiting for an instance is slow, not refused;
  // what the soak counts is failures, and throughput is not its question.
  return `# bench/soak.ts (variant ${variant}): three tenants, one origin in trouble by turns.
server:
  listen: 127.0.0.1:0
  admin: 127.0.0.1:0
  operatorToken: ${OPERATOR_TOKEN}
  shards: 2
tenants:
  - name: alpha
    hosts: [${HOSTS.alpha}]
    token: ${TENANT_TOKENS.alpha}
${origin(false)}
  - name: beta
    hosts: [${HOSTS.beta}]
    token: ${TENANT_TOKENS.beta}
${origin(false)}
    kv: { memory: 1MiB }
    programs:
      - name: app
        file: ${JSON.stringify(programs.app)}
        roles: [generate, recv, deliver]
        routes: [{ prefix: /b/app/, methods: [GET, HEAD] }]
        timeout: ${variant === 0 ? '5s' : '6s'}
        queueTimeout: 5s
  - name: gamma
    hosts: [${HOSTS.gamma}]
    token: ${TENANT_TOKENS.gamma}
${origin(true)}
    kv: { memory: ${variant === 0 ? '1MiB' : '2MiB'} }
    programs:
      - name: persist
        file: ${JSON.stringify(programs.persistent)}
        routes: [{ prefix: /g/p/, methods: [GET] }]
        lifecycle: persistent
        resetAfterRequests: 200
        queueTimeout: 5s
      - name: cgi
        file: ${JSON.stringify(programs.cgi)}
        mode: cgi
        routes: [{ prefix: /g/cgi/, methods: [POST] }]
        queueTimeout: 5s
`;
}
