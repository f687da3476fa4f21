/**
 * `sluice/amqp`: RabbitMQ (AMQP 0-9-1) at both edges, through `amqplib` (an optional peer,
 * loaded when a sink or source is first built).
 *
 * - {@link amqpSink}: a flush function that publishes one batch on a confirm channel and turns
 *   the publisher confirms (and returns) into a `FlushResult`.
 * - {@link AmqpSource}: a queue consumer whose `prefetch` is the bound, acked after store.
 * - {@link endToEnd}: source → sluice → sink, each message acked once its batch is stored.
 */
export { amqpSink, type AmqpSinkOptions } from './amqp/sink';
export { AmqpSource, type AmqpSourceOptions } from './amqp/source';
export type { AmqpConnectionOptions } from './amqp/connection';
export * from './shared';
