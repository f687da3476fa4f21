/** Waiting on work that an AbortSignal may cut short, shared by the library's edges and the CLI. */

/** Resolves or rejects as `work` does, or rejects with the signal's reason as soon as it aborts (after `onAbort`). */
export function untilAborted<T>(
  work: Promise<T>,
  signal: AbortSignal,
  onAbort: () => void = () => undefined,
): Promise<T> {
  work.catch(() => undefined); // settles after an abort too; nobody waits for it then
  if (signal.aborted) {
    onAbort();
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const aborted = (): void => {
      onAbort();
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', aborted, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', aborted);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', aborted);
        reject(error);
      },
    );
  });
}
