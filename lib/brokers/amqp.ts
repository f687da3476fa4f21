/**
 * `sluice/amqp`: RabbitMQ (AMQP 0-9-1) at both edges, through `amqplib` (an optional peer,
 * loaded when a sink or source is first built).
 */
export * from './shared';
