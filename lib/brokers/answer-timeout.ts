/**
 * How long a broker may take to answer what stopping and closing wait for (a drain, a flush, a
 * channel's close-ok): a half-open connection (the server's side gone, nothing received) never
 * answers, and would hang `close()`, `destroy()` and `run.stop()`. The same as JetStream's own API
 * timeout.
 */
export const ANSWER_TIMEOUT_MS = 5_000;

/**
 * Settles with `promise`, or rejects with `error()` if it has not settled within ANSWER_TIMEOUT_MS
 * (`promise` failing later is then nobody's business: it is not left unhandled).
 */
export function withinAnswerTimeout<T>(promise: Promise<T>, error: () => Error): Promise<T> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ANSWER_TIMEOUT_MS);
    timer.unref();
  });
  return Promise.race([promise, timedOut]).finally(() => clearTimeout(timer));
}
