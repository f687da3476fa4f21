/**
 * Loads a broker's client package the first time a broker edge needs it, so that the
 * package root and the other edges never require it. A missing package becomes a
 * `BrokerError` (`ERR_BROKER_CLIENT_MISSING`) that says what to install.
 */
import { BrokerError, type BrokerName } from './errors';

/**
 * Requires `name`; `install` lists the packages (with ranges) that `npm install` needs.
 * Any other failure to load (a broken install, a syntax error) is rethrown as it is.
 */
export function loadClient<T>(broker: BrokerName, name: string, install: readonly string[]): T {
  try {
    // A plain require inside a function: evaluated only when an edge is built, never at import.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const message = error instanceof Error ? error.message : '';
    if (code === 'MODULE_NOT_FOUND' && message.includes(`'${name}'`)) {
      throw BrokerError.clientMissing(broker, install, error);
    }
    throw error;
  }
}
