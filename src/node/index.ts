// tinyedge/node (experimental): run a tenant program in tiny VMs inside another Node web server.
// `createHandler` gives a node:http request listener, `tinyedgePlugin` a Fastify plugin; both call
// the program the way `tinyedge serve` does (through a program pool on the calling thread, in slices, per-request reset, the
// program's time and size limits) and answer a failure with its class only. docs/library.md.
export { createHandler, type ProgramHandler } from './http.ts';
export { tinyedgePlugin, type PluginOptions } from './fastify.ts';
export type { AdapterLogger, MountOptions } from './program.ts';
