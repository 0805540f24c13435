export { DistributedGallery, type DistributedGalleryOptions } from './distributed-gallery.js';
export { startDistributedWorker, type RunningDistributedWorker } from './distributed-worker.js';
export {
  ShardLeaseManager,
  fenceKey,
  leaseKey,
  liveWorkersKey,
  type HeldLease,
  type ShardLeaseOptions,
} from './leases.js';
export { ShardRpcClient, type ShardRpcClientOptions } from './shard-client.js';
export { ShardHost, type ShardHostOptions } from './shard-host.js';
export { shardQueueName, type ShardOp, type ShardOpReply, type ShardOpResult } from './shard-ops.js';
export { ShardRouter, type ShardClientLike } from './shard-router.js';
