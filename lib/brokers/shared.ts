/** What every broker subpath (`sluice/nats`, `sluice/redis`, `sluice/amqp`) exports besides its own edges. */
export { endToEnd, type EndToEndOptions, type EndToEndRun, type EndToEndSummary } from './ack';
export {
  BrokerSource,
  SourceMessage,
  type BrokerMessage,
  type Delivery,
  type SourceOptions,
  type Sent,
} from './source';
export { BrokerError, type BrokerErrorCode, type BrokerName } from './errors';
export type { BrokerSink } from './sink';
