import type { ExecutionProvider } from '../config/schema.js';

/** Messages between the main thread and the inference worker. */

export interface LoadOptions {
  modelPath: string;
  providers: ExecutionProvider[];
  intraOpThreads: number;
  /** session.intra_op.allow_spinning; onnxruntime's default (true) when absent. */
  allowSpinning?: boolean;
  deviceId: number;
}

export interface TensorMeta {
  name: string;
  type: string;
  /** Numbers for fixed dimensions, strings for symbolic ones ("batch_size"). */
  shape: (number | string)[];
}

export interface ProviderFailure {
  provider: ExecutionProvider;
  error: string;
}

export interface LoadedModel {
  provider: ExecutionProvider;
  failures: ProviderFailure[];
  input: TensorMeta;
  output: TensorMeta;
  loadMs: number;
}

export type WorkerRequest =
  | { type: 'load'; options: LoadOptions }
  | { type: 'run'; id: number; dtype: string; dims: number[]; data: ArrayBuffer };

export type WorkerReply =
  | { type: 'loaded'; model: LoadedModel }
  | { type: 'load-failed'; error: string; failures: ProviderFailure[] }
  | { type: 'result'; id: number; output: Float32Array; dims: number[]; inferenceMs: number }
  | { type: 'run-failed'; id: number; error: string };
