import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { parseArgs, ParseArgsConfig } from 'node:util';
import { PresetName } from '../config/schema.js';
import type { ProgressSink } from '../updates/hash-file.js';
import { parseDuration, publishRelease, ReleaseError } from '../updates/release-publish.js';
import { verifyRelease, VerifyError } from '../updates/release-verify.js';
import { generateKeyPair, keyFingerprint, SignatureError } from '../updates/signing.js';
import { ChannelName } from '../updates/manifest.js';
import { parsePreprocess } from './preprocess-option.js';
import { UsageError, parseCliArgs, type CliContext } from './context.js';

export const RELEASE_USAGE = `release keygen [--out DIR]
  Writes an Ed25519 key pair: DIR/release-key.pem (private, mode 0600) and DIR/release-key.pub.pem.
release publish --model FILE --labels FILE --preset imagenet|caffe-bgr --version V --key FILE --out DIR
        [--preprocess JSON] [--channel stable] [--rollout-percent 100] [--rollout-salt S] [--expires 30d]
        [--min-daemon-version V] [--rollback] [--validation DIR [--truth FILE] [--min-accuracy 0.5]]
        [--model-url URL]
  Builds and signs a release directory for any static HTTP server. --validation images ship with
  this model's top-10 probabilities on them, which devices must reproduce within another CPU's
  tolerance; --truth (file<TAB>label name[|name...]) adds what each image really shows, checked on
  the device by name, and the release is refused below --min-accuracy. --model-url ships no
  model.onnx and points the manifest at that URL instead (pinned by size and sha256).
release verify DIR --pubkey FILE [--pubkey FILE...]
  Checks the signature, every artifact's size and sha256, expiry and model.json.`;

export const PRIVATE_KEY_FILE = 'release-key.pem';
export const PUBLIC_KEY_FILE = 'release-key.pub.pem';

/** Progress bars need raw writes (carriage returns), which the line-based ctx.stderr cannot do. */
export interface ReleaseIo {
  progress: ProgressSink;
}

function defaultIo(): ReleaseIo {
  return { progress: { write: (s) => void process.stderr.write(s), isTTY: Boolean(process.stderr.isTTY) } };
}

function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  return parseCliArgs(config, RELEASE_USAGE);
}

async function keygen(argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parse({ args: argv, options: { out: { type: 'string', default: '.' } } });
  const dir = resolve(values.out);
  await mkdir(dir, { recursive: true });
  const { publicKey, privateKey } = generateKeyPair();
  const priv = join(dir, PRIVATE_KEY_FILE);
  const pub = join(dir, PUBLIC_KEY_FILE);
  // 'wx': never overwrite a key; losing the old one would strand every device that trusts it.
  const write = (path: string, text: string, mode: number): Promise<void> =>
    writeFile(path, text, { mode, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
      throw new ReleaseError(err.code === 'EEXIST' ? `${path} already exists; not overwriting a key` : `${path}: ${err.message}`);
    });
  await write(priv, privateKey, 0o600);
  await write(pub, publicKey, 0o644);
  ctx.stdout(`private key: ${priv} (keep it secret; it signs releases)`);
  ctx.stdout(`public key:  ${pub} (add to updates.public_keys on devices)`);
  ctx.stdout(`fingerprint: ${keyFingerprint(publicKey)}`);
  return 0;
}

async function readText(path: string, what: string): Promise<string> {
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`${what} ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
}

async function publish(argv: string[], ctx: CliContext, io: ReleaseIo): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      model: { type: 'string' },
      labels: { type: 'string' },
      preset: { type: 'string' },
      preprocess: { type: 'string' },
      version: { type: 'string' },
      key: { type: 'string' },
      out: { type: 'string' },
      channel: { type: 'string', default: 'stable' },
      'rollout-percent': { type: 'string', default: '100' },
      'rollout-salt': { type: 'string' },
      expires: { type: 'string', default: '30d' },
      'min-daemon-version': { type: 'string', default: ctx.version },
      rollback: { type: 'boolean', default: false },
      validation: { type: 'string' },
      truth: { type: 'string' },
      'min-accuracy': { type: 'string', default: '0.5' },
      'model-url': { type: 'string' },
    },
  });
  const missing = (['model', 'labels', 'preset', 'version', 'key', 'out'] as const).filter((k) => !values[k]).map((k) => `--${k}`);
  if (missing.length > 0) throw new UsageError(`release publish: missing ${missing.join(', ')}\nusage: edge-classifier ${RELEASE_USAGE}`);
  const preset = PresetName.safeParse(values.preset);
  if (!preset.success) throw new UsageError(`--preset must be imagenet or caffe-bgr, not ${values.preset}`);
  if (!ChannelName.safeParse(values.channel).success) throw new UsageError(`--channel: letters, digits, ".", "_" and "-" only, not ${values.channel}`);
  const preprocess = parsePreprocess(values.preprocess);
  const percent = Number(values['rollout-percent']);
  if (values['rollout-percent'].trim() === '' || !Number.isFinite(percent) || percent < 0 || percent > 100) {
    throw new UsageError(`--rollout-percent must be a number from 0 to 100, not ${values['rollout-percent']}`);
  }
  if (values.truth && !values.validation) throw new UsageError('--truth labels the --validation images: give both');
  const minAccuracy = Number(values['min-accuracy']);
  if (values['min-accuracy'].trim() === '' || !(minAccuracy >= 0 && minAccuracy <= 1)) throw new UsageError(`--min-accuracy must be a number from 0 to 1, not ${values['min-accuracy']}`);
  const keyPath = values.key!;
  const privateKeyPem = await readText(keyPath, '--key');
  const mode = (await stat(keyPath)).mode;
  if (mode & 0o077) ctx.stderr(`warning: ${keyPath} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);

  await publishRelease(
    {
      model: values.model!,
      labels: values.labels!,
      preset: preset.data,
      preprocess,
      version: values.version!,
      privateKeyPem,
      out: values.out!,
      channel: values.channel,
      rolloutPercent: percent,
      rolloutSalt: values['rollout-salt'],
      expiresInMs: parseDuration(values.expires),
      minDaemonVersion: values['min-daemon-version'],
      rollback: values.rollback,
      validationDir: values.validation,
      truthFile: values.truth,
      minAccuracy,
      modelUrl: values['model-url'],
    },
    { logger: ctx.logger, clock: ctx.clock, workerUrl: ctx.workerUrl, stdout: ctx.stdout, stderr: ctx.stderr, progress: io.progress },
  );
  return 0;
}

async function verify(argv: string[], ctx: CliContext, io: ReleaseIo): Promise<number> {
  const { values, positionals } = parse({ args: argv, allowPositionals: true, options: { pubkey: { type: 'string', multiple: true } } });
  const [dir, ...extra] = positionals;
  if (!dir || extra.length > 0 || !values.pubkey?.length) {
    throw new UsageError(`release verify takes one DIR and at least one --pubkey FILE\nusage: edge-classifier ${RELEASE_USAGE}`);
  }
  const keys = await Promise.all(values.pubkey.map((p) => readText(p, '--pubkey')));
  try {
    await verifyRelease(resolve(dir), keys, { clock: ctx.clock, stdout: ctx.stdout, progress: io.progress });
  } catch (err) {
    if (!(err instanceof VerifyError)) throw err;
    ctx.stderr(`edge-classifier: release verify FAILED:\n  ${err.message.replace(/\n/g, '\n  ')}`);
    return 1;
  }
  return 0;
}

/** `edge-classifier release <keygen|publish|verify> ...`. Returns the exit status. */
export async function releaseCommand(argv: string[], ctx: CliContext, io: ReleaseIo = defaultIo()): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case 'keygen':
        return await keygen(rest, ctx);
      case 'publish':
        return await publish(rest, ctx, io);
      case 'verify':
        return await verify(rest, ctx, io);
      default:
        throw new UsageError(`${sub === undefined ? 'missing' : `unknown`} release subcommand${sub ? ` "${sub}"` : ''}\nusage: edge-classifier ${RELEASE_USAGE}`);
    }
  } catch (err) {
    // Expected failures get one clear line and exit 1; anything else keeps its stack (main.ts).
    if (err instanceof ReleaseError || err instanceof SignatureError) {
      ctx.stderr(`edge-classifier: release ${sub}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
