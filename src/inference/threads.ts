import { availableParallelism } from 'node:os';

/**
 * model.intra_op_threads 0 ("auto"): one onnxruntime thread per CPU less one, at least one.
 *
 * The spare core is for everything else a frame needs: JPEG decoding and resizing (sharp, on
 * libuv threads), the main thread (tensorizing, MQTT) and the camera's process. With a thread
 * per CPU, onnxruntime's threads and those contend: measured on a 2-core VM with the synthetic
 * ResNet50 int8 and 640x480 JPEGs, two threads make bare session.run ~1.6x faster, yet the
 * pipeline is no faster than with one thread, at more CPU per frame (docs/performance.md).
 * onnxruntime's own default ("one per physical core") is not used because it differs between
 * machines in ways we cannot see (this VM's 2 vCPUs count as 1), which made the figures
 * unrepeatable.
 */
export function intraOpThreadsFor(configured: number, cpus: number = availableParallelism()): number {
  if (configured > 0) return configured;
  return Math.max(1, cpus - 1);
}
