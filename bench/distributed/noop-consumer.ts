/**
 * A BullMQ consumer that answers every job, after `delayMs` of doing nothing (0: at once), in its
 * own process as a worker is deployed:
 * `node --conditions=development --import tsx bench/distributed/noop-consumer.ts <redisUrl> <prefix> [delayMs]`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { BullMqJobConsumer } from '@facegate/queue';

const [redisUrl, prefix, delay] = process.argv.slice(2);
if (!redisUrl || !prefix) throw new Error('usage: noop-consumer <redisUrl> <prefix> [delayMs]');
const delayMs = Number(delay ?? 0);
const consumer = new BullMqJobConsumer(
  async () => {
    if (delayMs > 0) await sleep(delayMs);
    return { ok: true, result: { type: 'partitions', partitions: [] } };
  },
  { redisUrl, prefix, concurrency: 1 },
);
process.stdout.write('ready\n');
process.on('SIGTERM', () => void consumer.close().finally(() => process.exit(0)));
