import type { PreprocessSpec } from '../config/schema.js';
import type { InputDType } from '../vision/preprocess.js';
import type { LoadedModel } from './protocol.js';

/** A model that does not fit its preset or labels: reported at startup, before any frame. */
export class ModelMismatchError extends Error {
  override name = 'ModelMismatchError';
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
  const { input, output } = model;
  const dtype = DTYPES[input.type];
  if (!dtype) {
    throw new ModelMismatchError(`model input "${input.name}" has type ${input.type}; supported: float32, float16, uint8`);
  }
  const shape = input.shape;
  if (shape.length !== 4) {
    throw new ModelMismatchError(
      `model input "${input.name}" has shape ${describe(shape)}; an image classifier takes 4 dimensions (NCHW or NHWC)`,
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
      );
    }
  }
  // [N,K], [N,K,1,1] or a bare [K]: the class count is everything but the batch dimension.
  const classDims = output.shape.length === 1 ? output.shape : output.shape.slice(1);
  const classes = classDims.reduce<number | undefined>((acc, d) => (typeof d === 'number' && acc !== undefined ? acc * d : undefined), 1);
  if (classes !== undefined && classes !== labelCount) {
    throw new ModelMismatchError(
      `model output "${output.name}" has ${classes} classes (shape ${describe(output.shape)}) but the labels file has ${labelCount} lines`,
    );
  }
  return dtype;
}
