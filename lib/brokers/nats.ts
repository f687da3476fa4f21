/**
 * `sluice/nats`: NATS JetStream at both edges, through `@nats-io/transport-node` and
 * `@nats-io/jetstream` (optional peers, loaded when a sink or source is first built).
 *
 * - {@link natsSink}: a flush function that publishes one batch and turns the publish acks
 *   into a `FlushResult` (message ids for de-duplication).
 * - {@link JetStreamSource}: a durable pull consumer whose fetches are sized by the free space
 *   under `maxUnacked`, acked after store, with progress acks for long flushes.
 * - {@link endToEnd}: source → sluice → sink, each message acked once its batch is stored.
 */
export { natsSink, type NatsSinkOptions } from './nats/sink';
export { JetStreamSource, type JetStreamSourceOptions } from './nats/source';
export type { NatsConnectionOptions } from './nats/connection';
export * from './shared';
