import { burstWorkload } from './burst';
import { fastSinkWorkload } from './fast-sink';
import { peakedSinkWorkload } from './peaked-sink';
import { pooledSinkWorkload } from './pooled-sink';
import { slowSinkWorkload } from './slow-sink';
import { sqliteWorkload } from './sqlite';
import { stallWorkload } from './stall';
import type { Workload } from './workload';

/** In the order the report shows them. The state trace comes from the burst runs. */
export const workloads: readonly Workload[] = [
  fastSinkWorkload,
  slowSinkWorkload,
  peakedSinkWorkload,
  pooledSinkWorkload,
  stallWorkload,
  sqliteWorkload,
  burstWorkload,
];

export function workload(name: string): Workload {
  const found = workloads.find((w) => w.name === name);
  if (found === undefined) throw new Error(`unknown workload ${name}`);
  return found;
}
