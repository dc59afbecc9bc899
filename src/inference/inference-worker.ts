import { Worker } from 'node:worker_threads';
import type { Logger } from '../core/logger.js';
import type { LoadOptions, LoadedModel, WorkerReply, WorkerRequest } from './protocol.js';
import type { TensorData } from '../vision/preprocess.js';

export interface InferenceResult {
  output: Float32Array;
  dims: number[];
  inferenceMs: number;
}

export interface InferenceWorkerDeps {
  logger: Logger;
  config: LoadOptions;
  /** The compiled worker entry (dist/inference/worker.js). */
  workerUrl: URL;
}

/** Raised when no execution provider could load the model; `message` says why for each. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

interface Pending {
  resolve: (r: InferenceResult) => void;
  reject: (e: Error) => void;
}

/**
 * Main-thread handle of the inference worker: one onnxruntime session in one worker thread.
 * Inputs are transferred (not copied) into the worker; results are transferred back.
 */
export class InferenceWorker {
  private worker: Worker | undefined;
  private loaded: LoadedModel | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly inflight = new Set<Promise<InferenceResult>>();
  private stopping = false;
  private onLoad: ((reply: WorkerReply) => void) | undefined;
  private crashHandler: ((err: Error) => void) | undefined;

  constructor(private readonly deps: InferenceWorkerDeps) {}

  get model(): LoadedModel | undefined {
    return this.loaded;
  }

  get busy(): boolean {
    return this.pending.size > 0;
  }

  /** Called when the worker dies unexpectedly (after in-flight runs were rejected). */
  onCrash(handler: (err: Error) => void): void {
    this.crashHandler = handler;
  }

  async start(): Promise<LoadedModel> {
    this.stopping = false;
    const worker = new Worker(this.deps.workerUrl);
    this.worker = worker;
    worker.on('message', (reply: WorkerReply) => this.handle(reply));
    worker.on('error', (err) => this.failAll(new Error(`inference worker error: ${err.message}`)));
    worker.on('exit', (code) => this.exited(worker, code));
    const reply = await new Promise<WorkerReply>((resolve) => {
      this.onLoad = resolve;
      this.post({ type: 'load', options: this.deps.config });
    });
    this.onLoad = undefined;
    if (reply.type !== 'loaded') {
      await this.stop();
      const why = reply.type === 'load-failed' ? reply.error : `unexpected reply ${reply.type}`;
      throw new ModelLoadError(`cannot load model ${this.deps.config.modelPath}: ${why}`);
    }
    for (const f of reply.model.failures) {
      this.deps.logger.warn({ provider: f.provider, reason: f.error }, 'execution provider unavailable, falling back');
    }
    this.loaded = reply.model;
    return reply.model;
  }

  run(data: TensorData, dims: number[]): Promise<InferenceResult> {
    if (!this.worker || !this.loaded) return Promise.reject(new Error('inference worker is not running'));
    const id = this.nextId++;
    const dtype = data instanceof Float32Array ? 'float32' : data instanceof Uint16Array ? 'float16' : 'uint8';
    // Transfer the tensor's memory instead of copying it; the caller must not reuse `data`.
    const buffer = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data.buffer : data.slice().buffer;
    const result = new Promise<InferenceResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: 'run', id, dtype, dims, data: buffer as ArrayBuffer }, [buffer as ArrayBuffer]);
    });
    this.inflight.add(result);
    const forget = (): void => void this.inflight.delete(result);
    result.then(forget, forget);
    return result;
  }

  /** Waits for in-flight runs (up to `graceMs`), then terminates the thread. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    const worker = this.worker;
    if (!worker) return;
    const drained = Promise.allSettled([...this.inflight]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise<void>((res) => (timer = setTimeout(res, graceMs)))]);
    clearTimeout(timer);
    this.worker = undefined;
    this.loaded = undefined;
    await worker.terminate();
    this.failAll(new Error('inference worker stopped'));
  }

  private post(msg: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.worker?.postMessage(msg, transfer);
  }

  private handle(reply: WorkerReply): void {
    if (reply.type === 'loaded' || reply.type === 'load-failed') {
      this.onLoad?.(reply);
      return;
    }
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.type === 'result') p.resolve({ output: reply.output, dims: reply.dims, inferenceMs: reply.inferenceMs });
    else p.reject(new Error(`inference failed: ${reply.error}`));
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private exited(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    const err = new Error(`inference worker exited with code ${code}`);
    this.worker = undefined;
    this.loaded = undefined;
    this.onLoad?.({ type: 'load-failed', error: err.message, failures: [] });
    this.failAll(err);
    if (!this.stopping) {
      this.deps.logger.error({ code }, 'inference worker exited unexpectedly');
      this.crashHandler?.(err);
    }
  }
}
