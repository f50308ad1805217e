// The configuration `tinyedge serve` (and `npm start`) runs with when no file is given: one demo
// tenant, its origin and its program, all on loopback. Its relative paths resolve from the
// package root: the repository, or the installed package, which ships the demo program prebuilt.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's root: this module is src/server/config/default.ts, or dist/server/config/default.js. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The demo program, from the package root: guest/examples/hello.c, compiled by `npm run build`. */
export const DEMO_PROGRAM = 'dist/demo/hello';

export const DEFAULT_CONFIG_YAML = `# tinyedge's embedded default configuration (used by \`tinyedge serve\` and \`npm start\`).
# One demo tenant on localhost:8080: /hello is answered by the demo program (built from
# guest/examples/hello.c by \`npm run build\`), everything else by the demo origin on
# 127.0.0.1:9080. TINYEDGE_PORT, TINYEDGE_ADMIN_PORT and TINYEDGE_DEMO_ORIGIN_PORT move them (0: a
# free port). Relative paths resolve from the package root. docs/config.md describes every key.
server:
  listen: 127.0.0.1:\${TINYEDGE_PORT:-8080}
  admin: 127.0.0.1:\${TINYEDGE_ADMIN_PORT:-8081}
  operatorToken: \${TINYEDGE_OPERATOR_TOKEN:-demo-operator-token-change-me}   # every tenant, the dashboard, tinyedge log/stat
  slice: 2ms        # longest a program call holds the serving thread at a time
tenants:
  - name: demo
    hosts: [localhost, 127.0.0.1, demo.localhost]
    token: \${TINYEDGE_DEMO_TOKEN:-demo-token-change-me}
    origins:
      - name: default
        url: http://127.0.0.1:\${TINYEDGE_DEMO_ORIGIN_PORT:-9080}
    cache:
      memory: 64MiB
    kv:
      memory: 1MiB
    programs:
      - name: hello
        file: ${DEMO_PROGRAM}
        mode: sdk
        roles: [generate]
        routes:
          - { prefix: /hello, methods: [GET, HEAD] }
        memory: 64MiB
        timeout: 1s
        concurrency: 4
`;

/** Where the default config conceptually lives, so its relative paths resolve from the package root. */
export const DEFAULT_CONFIG_NAME = 'tinyedge.default.yaml';
