/**
 * `sluice publish` when the broker refuses some messages of a batch and takes the others: the
 * refused ones are retried alone, then written to the rejects file as `undelivered` with the
 * broker's reason, the accepted ones are published once, and the run exits 1. Real local NATS
 * JetStream: a stream whose `max_msg_size` refuses the long lines (a publish ack with an error for
 * exactly those messages). Redis (XADD) and RabbitMQ (confirms) have no per-message refusal that
 * a test can set up without the broker's admin tools, so they are not covered here.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect as natsConnect } from '@nats-io/transport-node';
import { NATS_URL, describeBroker, uniqueName } from '../brokers/support';
import { readRejects, runCli, summaryOf, tempDir } from './helpers';

jest.setTimeout(120_000);

const server = new URL(NATS_URL).host;

async function withManager<R>(work: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<R>): Promise<R> {
  const nc: NatsConnection = await natsConnect({ servers: server });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

describeBroker('sluice publish: a broker that refuses part of a batch (NATS JetStream)', NATS_URL, () => {
  let dir: string;
  let cleanup: () => void;
  let name: string;
  beforeEach(async () => {
    ({ dir, cleanup } = tempDir());
    name = uniqueName('cli_partial').toUpperCase();
    await withManager((jsm) => jsm.streams.add({ name, subjects: [`${name}.>`], max_msg_size: 200 }));
  });
  afterEach(async () => {
    cleanup();
    await withManager((jsm) => jsm.streams.delete(name).catch(() => undefined));
  });

  it('the refused lines are rejected as undelivered after their retries; the others are published once; exit 1', async () => {
    const long = new Set([5, 12, 17]);
    let text = '';
    for (let n = 1; n <= 20; n++) {
      text += `${JSON.stringify({ n, padding: long.has(n) ? 'x'.repeat(300) : '' })}\n`;
    }
    const input = join(dir, 'events.ndjson');
    const rejectsFile = join(dir, 'rejects.ndjson');
    writeFileSync(input, text);

    const result = await runCli(
      [
        'publish',
        input,
        '--into',
        `nats://${server}/${name}.in`,
        '--batch-size',
        '10',
        '--retries',
        '1',
        '--rejects',
        rejectsFile,
        '--json',
        '-q',
      ],
      dir,
    );

    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`sluice: publish failed: 3 message(s) not published; see ${rejectsFile}\n`);
    expect(summaryOf(result)).toMatchObject({
      status: 'failed',
      read: 20,
      published: 17,
      rejected: 3,
      rejectedBy: { undelivered: 3 },
    });
    const rejects = readRejects(rejectsFile);
    expect(rejects.map((reject) => reject.line)).toEqual([5, 12, 17]);
    for (const reject of rejects) {
      expect(reject.stage).toBe('undelivered');
      expect(reject.error).toMatch(/^not published: .*message size exceeds maximum allowed/i);
      expect(JSON.parse(reject.raw)).toMatchObject({ n: reject.line });
    }
    // Each accepted line is in the stream once: the retries resent only the refused messages.
    const stored = await withManager((jsm) => jsm.streams.info(name));
    expect(stored.state.messages).toBe(17);
  });
});
