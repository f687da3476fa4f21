/** The Redis client of a sink or source: the caller's own, or one opened (and closed) by sluice. */
import type { Redis as RedisClient } from 'ioredis';
import { stringOption } from '../options';
import { loadClient } from '../peer';

/** Where to reach Redis: your own `ioredis` client (left open), or a URL (a client sluice opens and closes). */
export interface RedisConnectionOptions {
  /** An `ioredis` client; sluice never closes it. */
  client?: RedisClient;
  /**
   * A `redis://` URL, used when `client` is left out.
   * @default 'redis://127.0.0.1:6379'
   */
  url?: string;
}

/** The client to use, and whether sluice opened it (and so must close it). */
export function connectRedis(options: RedisConnectionOptions): { client: RedisClient; owned: boolean } {
  if (options.client !== undefined) return { client: options.client, owned: false };
  const url = options.url === undefined ? 'redis://127.0.0.1:6379' : stringOption('url', options.url);
  const { Redis } = loadClient<typeof import('ioredis')>('redis', 'ioredis', ['ioredis']);
  return { client: new Redis(url), owned: true };
}
