/**
 * Items held when the process exits die with it. This registry knows which
 * sluices hold items and, at `'exit'`, writes one warning per such sluice
 * (synchronously: nothing asynchronous runs after `'exit'`). One process
 * listener for all sluices, installed with the first one that holds an item.
 */

export interface Watched {
  /** Items held plus writes waiting. */
  readonly length: number;
  readonly className: string;
}

const holding = new Set<Watched>();
let installed = false;

export function watchHolding(sluice: Watched): void {
  if (!installed) {
    installed = true;
    process.on('exit', warnAtExit);
  }
  holding.add(sluice);
}

export function unwatchHolding(sluice: Watched): void {
  holding.delete(sluice);
}

function warnAtExit(): void {
  for (const sluice of holding) {
    const count = sluice.length;
    if (count === 0) continue;
    const warning = new Error(
      `${sluice.className} still held ${count} item(s) when the process exited: they were neither delivered nor dead-lettered. End the stream and wait for 'finish' (or await pipeline()), or call shutdown(), before exiting.`,
    );
    warning.name = 'SluiceWarning';
    (warning as Error & { code: string }).code = 'SLUICE_ITEMS_HELD_AT_EXIT';
    // process.emitWarning() defers to the next tick, which never comes after 'exit'.
    process.emit('warning', warning);
  }
  holding.clear();
}
