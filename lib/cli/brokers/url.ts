/**
 * Broker URLs as the CLI takes them (`sluice ingest URL`, `sluice publish --into URL`):
 *
 *   nats://[USER:PASS@|TOKEN@]HOST[:PORT]/NAME[?consumer=C&ack-wait-ms=N]
 *   redis[s]://[USER:PASS@]HOST[:PORT]/NAME[?group=G&consumer=C&db=N&claim-idle-ms=N]
 *   amqp[s]://[USER:PASS@]HOST[:PORT]/NAME[?vhost=V]
 *
 * NAME is the JetStream stream (ingest) or subject (publish), the Redis stream key, the
 * RabbitMQ queue. Owns the parsing and the masking of credentials; opens nothing.
 */
import { hostname } from 'node:os';
import { usageError } from '../errors';

export type BrokerKind = 'nats' | 'redis' | 'amqp';

/** A parsed broker URL. `display` never carries a secret. */
export interface BrokerUrl {
  kind: BrokerKind;
  /** The URL without its path and query (credentials kept): what the client connects to. */
  server: string;
  /** The URL with its secrets replaced by ***: the only form shown to users. */
  display: string;
  /** The secrets in the URL (password, NATS token), to mask in the drivers' own messages. */
  secrets: string[];
  host: string;
  port: number;
  username: string;
  password: string;
  /** The stream, subject, stream key or queue. */
  name: string;
  /** NATS: the durable consumer; Redis: the consumer's name in the group. */
  consumer: string;
  /** Redis: the consumer group. */
  group: string;
  /** Redis: the database number. */
  db: number;
  /** AMQP: the virtual host. */
  vhost: string;
  /** NATS: ack_wait of a consumer created by this run. */
  ackWaitMs: number | undefined;
  /** Redis: pending entries idle this long on a dead consumer are claimed. */
  claimIdleMs: number | undefined;
}

const SCHEMES: Record<string, { kind: BrokerKind; port: number }> = {
  'nats:': { kind: 'nats', port: 4222 },
  'redis:': { kind: 'redis', port: 6379 },
  'rediss:': { kind: 'redis', port: 6380 },
  'amqp:': { kind: 'amqp', port: 5672 },
  'amqps:': { kind: 'amqp', port: 5671 },
};

/** Query parameters each broker takes, per command. */
const PARAMS: Record<BrokerKind, { ingest: string[]; publish: string[] }> = {
  nats: { ingest: ['consumer', 'ack-wait-ms'], publish: [] },
  redis: { ingest: ['group', 'consumer', 'db', 'claim-idle-ms'], publish: ['db'] },
  amqp: { ingest: ['vhost'], publish: ['vhost'] },
};

/** Whether `text` names a broker (rather than a file or a database). */
export function isBrokerUrl(text: string): boolean {
  return /^(nats|rediss?|amqps?):\/\//i.test(text);
}

/** Parses a broker URL for `command`; usage errors (exit 2) name what is wrong, never a secret. */
export function parseBrokerUrl(text: string, command: 'ingest' | 'publish'): BrokerUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usageError(`${maskUrl(text)} is not a valid broker URL`);
  }
  const scheme = SCHEMES[url.protocol.toLowerCase()];
  if (scheme === undefined) throw usageError(`${maskUrl(text)}: the scheme must be nats, redis, rediss, amqp or amqps`);
  const display = maskUrl(text);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  const what = { nats: command === 'ingest' ? 'stream' : 'subject', redis: 'stream key', amqp: 'queue' }[scheme.kind];
  if (name === '' || name.includes('/'))
    throw usageError(`${display} must name one ${what} as its path, e.g. ${url.protocol}//${url.host}/events`);
  const allowed = PARAMS[scheme.kind][command];
  for (const key of url.searchParams.keys()) {
    if (!allowed.includes(key))
      throw usageError(
        `${display}: unknown parameter "${key}" for ${command} (${allowed.length === 0 ? 'it takes none' : `it takes ${allowed.join(', ')}`})`,
      );
  }
  const param = (key: string): string | undefined => url.searchParams.get(key) ?? undefined;
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const consumer = param('consumer') ?? (scheme.kind === 'redis' ? hostname() : 'sluice');
  if (scheme.kind === 'nats' && command === 'ingest' && !/^[A-Za-z0-9_-]+$/.test(consumer))
    throw usageError(
      `${display}: the consumer name must be letters, digits, _ or -. Received ${JSON.stringify(consumer)}`,
    );
  return {
    kind: scheme.kind,
    server: `${url.protocol}//${url.username === '' ? '' : `${url.username}${url.password === '' ? '' : `:${url.password}`}@`}${url.host}`,
    display,
    secrets: [password, scheme.kind === 'nats' && password === '' ? username : ''].filter((s) => s.length >= 3),
    host: url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: url.port === '' ? scheme.port : Number(url.port),
    username,
    password,
    name,
    consumer,
    group: param('group') ?? 'sluice',
    db: integerParam(display, 'db', param('db'), 0) ?? 0,
    vhost: param('vhost') ?? '/',
    ackWaitMs: integerParam(display, 'ack-wait-ms', param('ack-wait-ms'), 1000),
    claimIdleMs: integerParam(display, 'claim-idle-ms', param('claim-idle-ms'), 1),
  };
}

/**
 * The URL with its password (and a NATS token, which sits where a user name would) replaced
 * by ***, for every message the user sees. Works on text that is not a valid URL too.
 */
export function maskUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = '***';
    else if (url.protocol === 'nats:' && url.username !== '') url.username = '***';
    return url.toString();
  } catch {
    return text.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** `message` with every secret of `url` replaced by ***: drivers sometimes echo what they were given. */
export function maskSecrets(message: string, url: BrokerUrl): string {
  let text = message;
  for (const secret of url.secrets) text = text.split(secret).join('***');
  return text;
}

function integerParam(display: string, key: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || !(value >= min))
    throw usageError(
      `${display}: the parameter "${key}" must be an integer >= ${min}. Received ${JSON.stringify(raw)}`,
    );
  return value;
}
