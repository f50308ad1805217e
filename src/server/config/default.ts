// The configuration `npm start` runs with when no file is given: one demo tenant, its origin and
// its program, all on loopback. Its relative paths resolve from the repository root.

export const DEFAULT_CONFIG_YAML = `# tinyedge's embedded default configuration (used by \`npm start\`).
# One demo tenant on localhost:8080: /hello is answered by the demo program (built from
# guest/examples/hello.c), everything else by the demo origin on 127.0.0.1:9080.
# Relative paths resolve from the repository root. docs/config.md describes every key.
server:
  listen: 127.0.0.1:8080
  admin: 127.0.0.1:8081
  operatorToken: \${TINYEDGE_OPERATOR_TOKEN:-}   # no operator calls unless set
  workers: 2
tenants:
  - name: demo
    hosts: [localhost, 127.0.0.1, demo.localhost]
    token: \${TINYEDGE_DEMO_TOKEN:-demo-token-change-me}
    origins:
      - name: default
        url: http://127.0.0.1:9080
    cache:
      memory: 64MiB
    kv:
      memory: 1MiB
    programs:
      - name: hello
        file: build/examples/hello
        mode: sdk
        roles: [generate]
        routes:
          - { prefix: /hello, methods: [GET, HEAD] }
        memory: 64MiB
        timeout: 1s
        concurrency: 4
`;

/** Where the default config conceptually lives, so its relative paths resolve from the repo root. */
export const DEFAULT_CONFIG_NAME = 'tinyedge.default.yaml';
