// The inference worker thread. onnxruntime-node's InferenceSession.create and run execute
// synchronously on the calling thread, so they live here: the main thread keeps serving
// MQTT keepalives, camera I/O and timers while a model loads or runs.
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { LoadOptions, LoadedModel, ProviderFailure, TensorMeta, WorkerReply, WorkerRequest } from './protocol.js';
import { float16BitsToFloat32 } from '../vision/float16.js';
import { intraOpThreadsFor } from './threads.js';

const port = parentPort;
if (!port) throw new Error('worker.ts must run as a worker thread');

// Probing absent GPU providers makes onnxruntime print native errors on stderr; we report
// each failure once ourselves, with its reason, so only fatal native messages are kept.
ort.env.logLevel = 'fatal';

let session: ort.InferenceSession | undefined;
let inputName = '';
let outputName = '';

function post(msg: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(msg, transfer);
}

function meta(m: ort.InferenceSession.ValueMetadata | undefined, fallbackName: string): TensorMeta {
  if (!m || !m.isTensor) return { name: m?.name ?? fallbackName, type: 'unknown', shape: [] };
  return { name: m.name, type: m.type, shape: [...m.shape] };
}

function providerOption(p: LoadOptions['providers'][number], deviceId: number): ort.InferenceSession.ExecutionProviderConfig {
  // The Node binding forwards only deviceId to TensorRT/CUDA; engine cache and fp16 are set
  // through ORT_TENSORRT_* environment variables (see README).
  return p === 'cpu' ? 'cpu' : { name: p, deviceId };
}

async function load(options: LoadOptions): Promise<void> {
  const failures: ProviderFailure[] = [];
  for (const provider of options.providers) {
    const started = performance.now();
    try {
      const created = await ort.InferenceSession.create(options.modelPath, {
        executionProviders: [providerOption(provider, options.deviceId)],
        graphOptimizationLevel: 'all',
        intraOpNumThreads: intraOpThreadsFor(options.intraOpThreads),
        ...(options.allowSpinning === undefined ? {} : { extra: { session: { intra_op: { allow_spinning: options.allowSpinning ? '1' : '0' } } } }),
        // Provider load failures are reported by us, once, with their reason.
        logSeverityLevel: 4,
      });
      session = created;
      inputName = created.inputNames[0] ?? '';
      outputName = created.outputNames[0] ?? '';
      const model: LoadedModel = {
        provider,
        failures,
        input: meta(created.inputMetadata[0], inputName),
        output: meta(created.outputMetadata[0], outputName),
        loadMs: performance.now() - started,
      };
      post({ type: 'loaded', model });
      return;
    } catch (err) {
      failures.push({ provider, error: (err as Error).message.split('\n')[0] ?? String(err) });
    }
  }
  post({ type: 'load-failed', error: failures.map((f) => `${f.provider}: ${f.error}`).join('; '), failures });
}

function toFloat32(data: ort.Tensor['data']): Float32Array {
  if (data instanceof Float32Array) return data;
  if (data instanceof Uint16Array) return Float32Array.from(data, float16BitsToFloat32);
  if (Array.isArray(data)) throw new Error('model output is not numeric (string tensor)');
  return Float32Array.from(data as ArrayLike<number | bigint>, Number);
}

function typedView(dtype: string, buf: ArrayBuffer): Float32Array | Uint16Array | Uint8Array {
  if (dtype === 'float16') return new Uint16Array(buf);
  if (dtype === 'uint8') return new Uint8Array(buf);
  return new Float32Array(buf);
}

async function run(msg: Extract<WorkerRequest, { type: 'run' }>): Promise<void> {
  if (!session) {
    post({ type: 'run-failed', id: msg.id, error: 'no model loaded' });
    return;
  }
  try {
    const input = new ort.Tensor(msg.dtype as 'float32', typedView(msg.dtype, msg.data) as Float32Array, msg.dims);
    const started = performance.now();
    const results = await session.run({ [inputName]: input });
    const inferenceMs = performance.now() - started;
    const out = results[outputName];
    if (!out) throw new Error(`model produced no output named ${outputName}`);
    // Copy out of onnxruntime's buffer so it can be transferred without aliasing.
    const output = toFloat32(out.data);
    const owned = output.buffer === (out.data as { buffer?: ArrayBufferLike }).buffer ? output.slice() : output;
    post({ type: 'result', id: msg.id, output: owned, dims: [...out.dims], inferenceMs }, [owned.buffer as ArrayBuffer]);
  } catch (err) {
    post({ type: 'run-failed', id: msg.id, error: (err as Error).message });
  }
}

port.on('message', (msg: WorkerRequest) => {
  // Never throw from the listener: every failure becomes a reply.
  if (msg.type === 'load') {
    load(msg.options).catch((err: unknown) => post({ type: 'load-failed', error: String(err), failures: [] }));
  } else {
    run(msg).catch((err: unknown) => post({ type: 'run-failed', id: msg.id, error: String(err) }));
  }
});
