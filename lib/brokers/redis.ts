/**
 * `sluice/redis`: Redis Streams at both edges, through `ioredis` (an optional peer,
 * loaded when a sink or source is first built).
 *
 * - {@link redisStreamSink}: a flush function that `XADD`s one batch in one pipeline and
 *   names the entries Redis refused, so that only those are retried.
 * - {@link RedisStreamSource}: a consumer-group reader (`XREADGROUP` with `COUNT` = free space),
 *   `XACK` after store, `XAUTOCLAIM` of entries a dead consumer left pending.
 * - {@link endToEnd}: source → sluice → sink, each message acked once its batch is stored.
 */
export { redisStreamSink, type RedisStreamSinkOptions } from './redis/sink';
export { RedisStreamSource, type RedisEntryFields, type RedisStreamSourceOptions } from './redis/source';
export type { RedisConnectionOptions } from './redis/connection';
export * from './shared';
