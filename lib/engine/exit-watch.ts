/**
 * Items held when the process exits die with it. This registry knows every
 * sluice (weakly: a sluice nobody references can be collected) and, at
 * `'exit'`, writes one warning per sluice that still holds items
 * (synchronously: nothing asynchronous runs after `'exit'`). One process
 * listener for all sluices, installed with the first one. Registering costs
 * nothing per item: a sluice is registered once, when it is made.
 */

export interface Watched {
  /** Items held plus writes waiting. */
  readonly length: number;
  readonly className: string;
}

let watched = new Set<WeakRef<Watched>>();
let installed = false;
/** Prune collected entries when the set has doubled since the last pruning. */
let pruneAt = 64;

export function watchForExit(sluice: Watched): void {
  if (!installed) {
    installed = true;
    process.on('exit', warnAtExit);
  }
  watched.add(new WeakRef(sluice));
  if (watched.size >= pruneAt) {
    watched = new Set([...watched].filter((ref) => ref.deref() !== undefined));
    pruneAt = Math.max(64, watched.size * 2);
  }
}

function warnAtExit(): void {
  for (const ref of watched) {
    const sluice = ref.deref();
    const count = sluice?.length ?? 0;
    if (sluice === undefined || count === 0) continue;
    const warning = new Error(
      `${sluice.className} still held ${count} item(s) when the process exited: they were neither delivered nor dead-lettered. End the stream and wait for 'finish' (or await pipeline()), or call shutdown(), before exiting.`,
    );
    warning.name = 'SluiceWarning';
    (warning as Error & { code: string }).code = 'SLUICE_ITEMS_HELD_AT_EXIT';
    // process.emitWarning() defers to the next tick, which never comes after 'exit'.
    process.emit('warning', warning);
  }
  watched.clear();
}
