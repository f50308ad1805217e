// Public surface of the cache engine: what the server and the CLI import.
export { Cache, type CacheOptions } from './engine.ts';
export type { FastResponse } from './fast.ts';
export type { RawRequest } from './fast-fetch.ts';
export type { CacheHooks, CacheStats, HookRequest, HookResponse, RecvDecision } from './context.ts';
export { Origin, OriginError, type Backend, type BackendRequest, type BackendResponse, type BackendPolicy, type HealthCheckOptions, type OriginOptions } from './origin.ts';
export { Storage, Namespace, MAX_VARIANTS, type StorageOptions } from './storage.ts';
export type { NamespaceOptions, ObjectStorage, ObjectStore } from './object-store.ts';
export { MAX_STORED_BODY_BYTES, ReserveError, SharedStorage, type SharedStoreHandle, type StoreStats } from './shared-storage.ts';
export { MAX_OBJECT_TAGS, MAX_OBJECT_TAG_BYTES } from './object.ts';
export { BanSyntaxError, MAX_BANS, MAX_BAN_EXPRESSION_BYTES } from './invalidation.ts';
export type { HeaderList } from './headers.ts';
