/**
 * A BullMQ consumer that answers every job at once, in its own process as a worker is deployed:
 * `node --conditions=development --import tsx bench/distributed/noop-consumer.ts <redisUrl> <prefix>`.
 */
import { BullMqJobConsumer } from '@facegate/queue';

const [redisUrl, prefix] = process.argv.slice(2);
if (!redisUrl || !prefix) throw new Error('usage: noop-consumer <redisUrl> <prefix>');
const consumer = new BullMqJobConsumer(async () => ({ ok: true, result: { type: 'partitions', partitions: [] } }), {
  redisUrl,
  prefix,
  concurrency: 1,
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => void consumer.close().finally(() => process.exit(0)));
