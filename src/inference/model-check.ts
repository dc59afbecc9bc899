import type { PreprocessSpec } from '../config/schema.js';
import type { InputDType } from '../vision/preprocess.js';
import type { LoadedModel, TensorMeta } from './protocol.js';

/** Which side of a model does not fit: its input (the preset) or its output (the labels). */
export type MismatchPart = 'input' | 'output';

/** A model that does not fit its preset or labels: reported at startup, before any frame. */
export class ModelMismatchError extends Error {
  override name = 'ModelMismatchError';

  /** `part` lets a report say whether the input was fine; absent where the model could not be read at all. */
  constructor(
    message: string,
    readonly part?: MismatchPart,
  ) {
    super(message);
  }
}

const DTYPES: Record<string, InputDType> = { float32: 'float32', float16: 'float16', uint8: 'uint8' };

function describe(shape: (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * Checks the loaded model's input against the preprocessing spec and its output against the
 * label count, and returns the input dtype to produce. Symbolic dimensions are accepted.
 */
export function checkModel(model: LoadedModel, spec: PreprocessSpec, labelCount: number): InputDType {
  const dtype = checkInput(model.input, spec);
  checkOutput(model.output, labelCount);
  return dtype;
}

/** The input alone (for callers that learn the class count only from a run); returns the dtype to produce. */
export function checkInput(input: TensorMeta, spec: PreprocessSpec): InputDType {
  const dtype = DTYPES[input.type];
  if (!dtype) {
    throw new ModelMismatchError(`model input "${input.name}" has type ${input.type}; supported: float32, float16, uint8`, 'input');
  }
  const shape = input.shape;
  if (shape.length !== 4) {
    throw new ModelMismatchError(
      `model input "${input.name}" has shape ${describe(shape)}; an image classifier takes 4 dimensions (NCHW or NHWC)`,
      'input',
    );
  }
  const expected = spec.layout === 'nchw' ? [1, 3, spec.size, spec.size] : [1, spec.size, spec.size, 3];
  const names = spec.layout === 'nchw' ? ['batch', 'channels', 'height', 'width'] : ['batch', 'height', 'width', 'channels'];
  for (let i = 0; i < 4; i++) {
    const dim = shape[i];
    if (typeof dim === 'number' && dim > 0 && dim !== expected[i]) {
      const other = spec.layout === 'nchw' ? 'nhwc' : 'nchw';
      const hint =
        i === 0
          ? 'only batch size 1 (or a dynamic batch) is supported'
          : `the preset produces ${describe(expected)} (${spec.layout}); set model.preprocess.size or model.preprocess.layout (${other}?) to match`;
      throw new ModelMismatchError(
        `model input "${input.name}" has shape ${describe(shape)} but its ${names[i]} should be ${expected[i]}: ${hint}`,
        'input',
      );
    }
  }
  return dtype;
}

/** The declared output against the label count; a symbolic class count passes (the warm-up run tells). */
export function checkOutput(output: TensorMeta, labelCount: number): void {
  // [N,K], [N,K,1,1] or a bare [K]: the class count is everything but the batch dimension.
  const classDims = output.shape.length === 1 ? output.shape : output.shape.slice(1);
  const classes = classDims.reduce<number | undefined>((acc, d) => (typeof d === 'number' && acc !== undefined ? acc * d : undefined), 1);
  if (classes !== undefined && classes !== labelCount) {
    throw new ModelMismatchError(
      `model output "${output.name}" has ${classes} classes (shape ${describe(output.shape)}) but the labels file has ${labelCount} lines`,
      'output',
    );
  }
}
