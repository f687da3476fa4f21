/**
 * `sluice/nats`: NATS JetStream at both edges, through `@nats-io/transport-node` and
 * `@nats-io/jetstream` (optional peers, loaded when a sink or source is first built).
 */
export * from './shared';
