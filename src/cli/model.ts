import { rename, writeFile } from 'node:fs/promises';
import { resnet50Labels, synthesizeResnet50Detailed, type Precision } from '../modelgen/synth.js';
import { UsageError, parseCliArgs, type CliContext } from './context.js';

export const MODEL_USAGE = `model synth --arch resnet50 --precision fp32|int8 --seed N --out FILE [--labels-out FILE]
  Writes a synthetic ResNet50 v1.5 (seeded random weights; int8 = QDQ, calibrated) for speed,
  size and memory measurements. Its labels are placeholders: the predictions mean nothing.`;

const ARCHS = ['resnet50'] as const;
const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];

/** `model synth ...`: generates the model file (and optionally its labels). Returns the exit status. */
export async function modelCommand(argv: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'synth') throw new UsageError(MODEL_USAGE);
  const { values, positionals } = parseCliArgs({
    args: rest,
    allowPositionals: true,
    options: {
      arch: { type: 'string' },
      precision: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      'labels-out': { type: 'string' },
    },
  }, MODEL_USAGE);
  if (positionals.length > 0 || !values.arch || !values.precision || values.seed === undefined || !values.out) {
    throw new UsageError(MODEL_USAGE);
  }
  if (!(ARCHS as readonly string[]).includes(values.arch)) throw new UsageError(`--arch must be ${ARCHS.join(' or ')}, not ${values.arch}`);
  const precision = PRECISIONS.find((p) => p === values.precision);
  if (!precision) throw new UsageError(`--precision must be fp32 or int8, not ${values.precision}`);
  // Unsigned 32-bit: the generator's PRNG state; a wider seed would silently alias.
  const seed = /^\d+$/.test(values.seed) ? Number(values.seed) : NaN;
  if (!(Number.isSafeInteger(seed) && seed <= 0xffffffff)) throw new UsageError(`--seed must be an integer 0..4294967295, not ${values.seed}`);

  const start = performance.now();
  const { bytes, parameters } = await synthesizeResnet50Detailed({ precision, seed });
  // Write-then-rename: a daemon watching FILE never sees a half-written 100 MB model.
  const tmp = `${values.out}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, values.out);
  if (values['labels-out']) await writeFile(values['labels-out'], resnet50Labels());
  const seconds = (performance.now() - start) / 1000;
  ctx.stderr(
    `wrote ${values.out}: synthetic resnet50 v1.5 ${precision}, seed ${seed}, ` +
      `${(bytes.length / 1e6).toFixed(1)} MB (${bytes.length} bytes), ${(parameters / 1e6).toFixed(2)} M parameters ` +
      `(${parameters}), ${seconds.toFixed(1)} s`,
  );
  return 0;
}
