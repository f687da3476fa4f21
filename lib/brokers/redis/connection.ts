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

/**
 * Closes a client sluice opened: `quit()` while it is connected, so that the replies of the
 * commands in flight come first; otherwise at once (see {@link abandonRedis}). A `quit()` on a
 * client that is waiting to reconnect would wait for the reconnect, which may never come.
 */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') await client.quit().catch(() => abandonRedis(client));
  else abandonRedis(client);
}

/** The parts of an ioredis client that {@link abandonRedis} reaches for (present in ioredis 5 and 6). */
interface ClientInternals {
  reconnectTimeout?: NodeJS.Timeout | null;
  setStatus?: (status: string) => void;
  flushQueue?: (error: Error) => void;
  prevCommandQueue?: { shift(): { command?: { reject?: (error: Error) => void } } | undefined } | null;
}

/**
 * Disconnects at once and fails every command the client still holds. ioredis leaves them
 * unsettled in two cases: `disconnect()` while it waits to reconnect leaves it in that state (its
 * close handler does not run again), and the commands that were in flight when the connection
 * dropped sit in a stash that only a successful reconnect drains (redis/ioredis#2169, #2197). Each
 * would wait for `commandTimeout`, or for ever without one. So a client waiting to reconnect is
 * closed here as ioredis closes one by hand (the reconnect timer cleared, status `end`, its queues
 * failed), without the `disconnect()` whose timer for the socket, already closed, would hold the
 * process for 2 s; and the stash is failed. Through those internals where present; without them the
 * client is only disconnected.
 */
export function abandonRedis(client: RedisClient): void {
  const internals = client as unknown as ClientInternals;
  const error = new Error('Connection is closed.');
  // Closed already: a disconnect() would arm a timer for its closed socket that nothing clears.
  if (client.status !== 'end' && !closeWhileReconnecting(client, internals, error)) client.disconnect();
  const stash = internals.prevCommandQueue;
  if (stash !== null && stash !== undefined && typeof stash.shift === 'function') {
    for (let item = stash.shift(); item !== undefined; item = stash.shift()) item.command?.reject?.(error);
    internals.prevCommandQueue = null;
  }
}

/** A (non-cluster) client waiting to reconnect, closed as ioredis closes one by hand; false if it is not one. */
function closeWhileReconnecting(client: RedisClient, internals: ClientInternals, error: Error): boolean {
  if (client.status !== 'reconnecting' || (client as { isCluster?: boolean }).isCluster === true) return false;
  if (typeof internals.setStatus !== 'function' || !('reconnectTimeout' in internals)) return false;
  clearTimeout(internals.reconnectTimeout ?? undefined);
  internals.reconnectTimeout = null;
  internals.setStatus('end');
  internals.flushQueue?.(error);
  return true;
}
