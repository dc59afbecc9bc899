/**
 * A camera read by `gst-launch-1.0 -q -- <pipeline>` (Jetson CSI via nvarguscamerasrc, Pi
 * libcamerasrc, anything GStreamer can open), the pipeline ending in `fdsink` (stdout). The
 * output is JPEG frames (format mjpeg) or packed RGB of width x height (format raw). Run by
 * ProcessSupervisor like ffmpeg: watchdog, restarts with backoff, kill on stop.
 *
 * No shell: the pipeline is split into argv words here. It cannot be passed as one word:
 * gst-launch joins its arguments after escaping every space outside double quotes, so a
 * single "a ! b" arrives as "a\ !\ b", a syntax error (checked with GStreamer 1.22). Words
 * split at unquoted whitespace are joined back into the original text. `-q` keeps
 * gst-launch's progress messages off stdout (they would corrupt the frames); `--` keeps a
 * word starting with "-" from being read as an option (`-v` would also write to stdout).
 */
import type { GstreamerSourceConfig } from '../config/schema.js';
import type { RawFormat } from './frame.js';
import { MjpegSplitter } from './process/mjpeg-splitter.js';
import { RawSplitter } from './process/raw-splitter.js';
import { SupervisedSource, type ProcessSpec, type SupervisedDeps } from './supervised-source.js';

export type GstreamerSourceDeps = SupervisedDeps<GstreamerSourceConfig>;

const COMMAND = 'gst-launch-1.0';

/** Splits at whitespace outside double quotes (a quote escaped with \ does not count), as gst-launch does. */
export function pipelineWords(pipeline: string): string[] {
  const words: string[] = [];
  let word = '';
  let inQuotes = false;
  for (let i = 0; i < pipeline.length; i++) {
    const c = pipeline[i]!;
    if (c === '"' && (!inQuotes || pipeline[i - 1] !== '\\')) inQuotes = !inQuotes;
    if (!inQuotes && /\s/.test(c)) {
      if (word) words.push(word);
      word = '';
    } else {
      word += c;
    }
  }
  if (inQuotes) throw new Error('gstreamer pipeline: unbalanced double quote');
  if (word) words.push(word);
  return words;
}

/** The pipeline's elements, split at `!` outside double quotes. */
function elements(pipeline: string): string[] {
  const parts: string[] = [];
  let part = '';
  let inQuotes = false;
  for (let i = 0; i < pipeline.length; i++) {
    const c = pipeline[i]!;
    if (c === '"' && (!inQuotes || pipeline[i - 1] !== '\\')) inQuotes = !inQuotes;
    if (c === '!' && !inQuotes) {
      parts.push(part.trim());
      part = '';
    } else {
      part += c;
    }
  }
  parts.push(part.trim());
  return parts;
}

/**
 * Throws a clear error unless the pipeline's last element is `fdsink` writing to stdout
 * (fd 1, its default): the frames must reach the daemon through the pipe.
 */
export function checkPipeline(pipeline: string): void {
  const words = pipelineWords(pipeline);
  if (words.length === 0) throw new Error('gstreamer pipeline is empty');
  const last = elements(pipeline).at(-1) ?? '';
  const [element, ...props] = pipelineWords(last);
  if (element !== 'fdsink') {
    throw new Error(
      `gstreamer pipeline must end in "fdsink" (frames are read from gst-launch's stdout), but it ends in "${element ?? ''}": ` +
        'append "! fdsink" (after jpegenc for format mjpeg, after video/x-raw,format=RGB for raw)',
    );
  }
  const fd = props.map((p) => /^fd=(.*)$/.exec(p)?.[1]).find((v) => v !== undefined);
  if (fd !== undefined && fd !== '1') throw new Error(`gstreamer pipeline: fdsink must write to stdout (fd=1), not fd=${fd}`);
}

/** What is captured, for messages and frames: the first element's name. */
export function describePipeline(pipeline: string): string {
  const first = pipelineWords(elements(pipeline)[0] ?? '')[0] ?? 'pipeline';
  return `gstreamer:${first}`;
}

/** Removes URL credentials and password properties (rtspsrc user-pw=...) from any text. */
export function redactPipelineText(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"]*@/gi, '$1***@')
    .replace(/\b(user-pw|password|passwd|passphrase)=("[^"]*"|\S+)/gi, '$1=***');
}

export class GstreamerSource extends SupervisedSource<GstreamerSourceConfig, GstreamerSourceDeps> {
  /** Earliest monotonic time of the next frame passed on: the pipeline may run faster than fps. */
  private nextDue = 0;

  protected plan(): ProcessSpec {
    const { config, camera, clock, logger } = this.deps;
    checkPipeline(config.pipeline);
    const raw = rawFormat(config);
    logger.debug({ camera, pipeline: redactPipelineText(config.pipeline), format: config.format }, 'starting gst-launch');
    const interval = 1000 / config.fps;
    return {
      command: COMMAND,
      args: ['-q', '--', ...pipelineWords(config.pipeline)],
      description: describePipeline(config.pipeline),
      redact: redactPipelineText,
      createSplitter: (d) => (raw ? new RawSplitter({ ...d, ...raw }) : new MjpegSplitter(d)),
      endOnCleanExit: false,
      raw,
      // At most fps frames on average; a frame up to a quarter interval early still counts
      // as on time, so a pipeline running at exactly fps loses nothing to jitter.
      accept: () => {
        const now = clock.monotonic();
        if (now < this.nextDue - interval / 4) return false;
        this.nextDue = Math.max(this.nextDue, now - interval / 2) + interval;
        return true;
      },
    };
  }
}

function rawFormat(config: GstreamerSourceConfig): RawFormat | undefined {
  if (config.format !== 'raw') return undefined;
  const { width, height } = config;
  if (width === undefined || height === undefined) throw new Error('gstreamer format raw needs width and height');
  if (width * height * 3 > config.max_frame_bytes) {
    throw new Error(`gstreamer raw frames of ${width}x${height} RGB are ${width * height * 3} bytes, more than max_frame_bytes=${config.max_frame_bytes}`);
  }
  return { width, height };
}
