'use strict';
/**
 * A disk-backed BlockingWritable in a process of its own, for sluice-crash.spec.ts. Runs the built
 * package (`npm run build` first). Every line it prints is written synchronously, so a line the
 * parent reads was printed before anything after it in this process.
 *
 *   node sluice-child.js DIR DELIVERED FSYNC FROM TO
 *
 * Opens the sluice on DIR (replaying what a killed run left), then writes the numbers FROM..TO-1
 * through `pipeline()`, honouring backpressure. Prints `a N` once the write callback of N ran
 * (accepted: in the log) and `r COUNT` on 'replay'. The sink appends `value id` lines to DELIVERED
 * (with a synchronous write, so they survive the process being killed) before it resolves, and
 * yields to the event loop first, so that batches are in flight when the kill comes. Small
 * segments, so that rotation and deletion happen often.
 */
const { openSync, writeSync } = require('node:fs');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { BlockingWritable } = require('../../../dist/index.js');

const [dir, deliveredFile, fsync, from, to] = process.argv.slice(2);
const delivered = openSync(deliveredFile, 'a');
const print = (line) => writeSync(1, `${line}\n`);

const sink = new BlockingWritable(
  async (items, { ids }) => {
    await new Promise((resolve) => setImmediate(resolve));
    writeSync(delivered, items.map((value, i) => `${value} ${ids[i]}\n`).join(''));
  },
  {
    batchSize: 20,
    maxBufferSize: 50,
    maxConcurrentFlushes: 2,
    disk: { path: dir, fsync, segmentBytes: 1024, maxBytes: 64 * 1024 },
  },
);
sink.on('replay', (count) => print(`r ${count}`));

async function* numbers() {
  for (let n = Number(from); n < Number(to); n++) yield n;
}

/** Reports each write's acceptance, then passes it on: the callback runs once the item is in the log. */
const write = sink.write.bind(sink);
sink.write = (item, encoding, callback) => {
  const done = typeof encoding === 'function' ? encoding : callback;
  return write(item, (error, accepted) => {
    if (!error && accepted) print(`a ${item}`);
    done?.(error, accepted);
  });
};

pipeline(Readable.from(numbers()), sink).then(
  () => print('done'),
  (error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  },
);
