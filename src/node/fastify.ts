// The Fastify side of the embedding adapter: a plugin that mounts a tenant program under the
// prefix it is registered with, for every method. It needs nothing of Fastify at run time (types
// only): Fastify calls it like any plugin. Its scope is encapsulated, so the raw-body parser it
// installs applies to its own routes only.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { incomingCall } from './http.ts';
import { MountedProgram, type MountOptions } from './program.ts';

/**
 * The plugin's options: the program and its limits. Register it with Fastify's own `prefix` option
 * to choose the path it answers under; the program sees the whole path, prefix included (as under
 * `serve`, where a route's prefix is part of the URL the program gets).
 */
export type PluginOptions = MountOptions;

/**
 * A Fastify plugin answering every request under its prefix (all methods) with a tenant program
 * running in tiny VMs, reset after each request, the way `tinyedge serve` runs it. The program is
 * loaded when the plugin registers (registration fails if it cannot be loaded or fails its warm-up,
 * a GET of the prefix) and unloaded when Fastify closes. Request bodies reach the program
 * unparsed, whatever their type; failures are logged through `logger`, by default the request's
 * Fastify logger.
 *
 * @example
 * await app.register(tinyedgePlugin, { prefix: '/edge', program: 'build/examples/echo' });
 */
export const tinyedgePlugin: FastifyPluginAsync<PluginOptions> = async (instance, options) => {
  const mount = await MountedProgram.mount(options, instance.prefix === '' ? '/' : instance.prefix);
  instance.addHook('onClose', () => mount.close());
  // The program gets the body as it came: the stream itself, read and bounded by the mount.
  instance.removeAllContentTypeParsers();
  instance.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const body = (request.body as Readable | undefined) ?? null;
    const answer = await mount.answer(incomingCall(request.raw), body, options.logger ?? request.log);
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  };
  instance.all('/', handler);
  instance.all('/*', handler);
};
