'use strict';
/**
 * The disk log in a process of its own, for the lock and crash specs. Runs the built package
 * (`npm run build` first). One JSON object per stdout line, written synchronously, so a line the
 * parent reads was printed before anything that came after it in this process.
 *
 *   node disk-child.js hold DIR        open the log, print {"ready": pid}, wait to be killed
 *   node disk-child.js open DIR        open the log; print {"ready": pid} or {"code", "message"}; exit
 *   node disk-child.js race DIR GO     print {"waiting": pid}, wait until the file GO exists, then as hold
 *                                      (or as open when refused)
 *   node disk-child.js crash DIR       open (always mode, small segments); print each replayed record
 *                                      {"r": id}; acknowledge about half of them, {"t": [ids]} before the
 *                                      ack() call, {"k": [ids]} once recorded; then append forever in concurrent groups: {"w": payload}
 *                                      before each append, {"a": id, "p": payload} after it resolved
 */
const { existsSync, writeSync } = require('node:fs');
const { DiskLog } = require('../../../dist/disk/log');

const [mode, dir, go] = process.argv.slice(2);
const print = (message) => writeSync(1, `${JSON.stringify(message)}\n`);

/** Blocks until `file` exists, looking every 0.2 ms: the racers start within a fraction of a millisecond. */
function waitForFile(file) {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(file)) Atomics.wait(pause, 0, 0, 0.2);
}

async function main() {
  if (mode === 'race') {
    print({ waiting: process.pid });
    waitForFile(go);
  }
  if (mode === 'hold' || mode === 'open' || mode === 'race') {
    try {
      const log = await DiskLog.open({ path: dir });
      print({ ready: process.pid });
      if (mode === 'hold' || mode === 'race') setInterval(() => undefined, 1000);
      else await log.close();
    } catch (error) {
      print({ code: error.code, message: error.message });
    }
    return;
  }
  const log = await DiskLog.open({ path: dir, fsync: 'always', segmentBytes: 2048 });
  const replayed = [];
  for await (const record of log.records(50)) {
    print({ r: record.id, p: record.payload.toString() });
    replayed.push(record.id);
  }
  const toAck = replayed.filter(() => Math.random() < 0.5).sort(() => Math.random() - 0.5);
  const halves = [toAck.slice(0, toAck.length >> 1), toAck.slice(toAck.length >> 1)];
  await Promise.all(
    halves.map((ids) => {
      print({ t: ids });
      return log.ack(ids).then(() => print({ k: ids }));
    }),
  );
  const run = `${process.pid}`;
  let n = 0;
  const inFlight = new Set();
  for (;;) {
    const size = 1 + Math.floor(Math.random() * 16);
    for (let i = 0; i < size; i++) {
      const payload = `${run}-${n++}`;
      print({ w: payload });
      const append = log.append(Buffer.from(payload)).then((id) => print({ a: id, p: payload }));
      inFlight.add(append);
      void append.finally(() => inFlight.delete(append));
    }
    // Up to three groups in flight: appends keep arriving while a group is written and synced.
    if (inFlight.size > 32) await Promise.race(inFlight);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
