import type { CameraState } from '../camera/camera-health.js';

/**
 * Is the pipeline getting anywhere? Pure decisions from plain samples, for the systemd
 * watchdog (WATCHDOG=1 only while it does) and for READY=1.
 */

/** The pipeline at one instant. Counters are totals over all cameras since start. */
export interface PipelineSample {
  /** When it was taken (monotonic ms, the clock the timestamps below come from). */
  at: number;
  captured: number;
  classified: number;
  /** Frames that left the pipeline without a result: replaced in their slot, undecodable, failed in the worker. */
  discarded: number;
  /** When the decode running now began; undefined when none runs. */
  decodingSince: number | undefined;
  /** When the inference running now began; undefined when none runs. */
  inferringSince: number | undefined;
  /** Inferences that failed (thrown, or non-finite output); part of `discarded`. */
  inferenceErrors?: number;
}

export type Verdict =
  | { progress: true; why: 'classifying' | 'waiting' }
  | { progress: false; why: string };

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Frames captured but neither classified nor discarded yet: in a slot, decoding or in the worker. */
export function framesInPipeline(s: PipelineSample): number {
  return Math.max(0, s.captured - s.classified - s.discarded);
}

const runsNothing = (s: PipelineSample): boolean => s.decodingSince === undefined && s.inferringSince === undefined;

/**
 * Progress between two samples one watchdog interval apart: a frame was classified, or nothing
 * is stuck. Stuck means the same work spans the whole interval: an inference or a decode that
 * was already running at the previous check, or frames that sat waiting with nothing running
 * at both checks. A wedged worker therefore stops the pings even though the event loop and the
 * cameras are fine (new frames only replace the one in the slot).
 *
 * Everything else is an honest wait: cameras offline or in backoff, ended, disabled, paused,
 * or slower than the interval (nothing in flight, nothing waiting). Frames that fail quickly
 * (undecodable, or an inference error) also count as moving: the pipeline is not wedged, a
 * restart would not fix the camera or the model, and the errors are logged and counted.
 */
export function judgeProgress(prev: PipelineSample, now: PipelineSample): Verdict {
  if (now.classified > prev.classified) return { progress: true, why: 'classifying' };
  if (now.inferringSince !== undefined && now.inferringSince <= prev.at) {
    return { progress: false, why: `inference running for ${seconds(now.at - now.inferringSince)}` };
  }
  if (now.decodingSince !== undefined && now.decodingSince <= prev.at) {
    return { progress: false, why: `frame decode running for ${seconds(now.at - now.decodingSince)}` };
  }
  const waiting = framesInPipeline(now);
  const moved = now.classified + now.discarded !== prev.classified + prev.discarded;
  if (waiting > 0 && framesInPipeline(prev) > 0 && runsNothing(prev) && runsNothing(now) && !moved) {
    return { progress: false, why: `${waiting} frame(s) waiting for ${seconds(now.at - prev.at)} with nothing running` };
  }
  return { progress: true, why: 'waiting' };
}

/**
 * Inference is failing, though the pipeline is not stuck: inferences failed in the interval and
 * none succeeded (a model whose outputs are NaN/Infinity, one that throws on every frame). Not a
 * reason to withhold WATCHDOG=1 (a restart would run the same model; a model on probation is
 * rolled back by its error count), but the service is not healthy: /healthz says so. Returns why,
 * or undefined when no inference failed in the interval.
 */
export function judgeInference(prev: PipelineSample, now: PipelineSample): string | undefined {
  const failed = (now.inferenceErrors ?? 0) - (prev.inferenceErrors ?? 0);
  if (failed <= 0 || now.classified > prev.classified) return undefined;
  return `every inference failed for ${seconds(now.at - prev.at)} (${failed} error${failed === 1 ? '' : 's'}, none classified)`;
}

/**
 * Why the service may report READY=1, or undefined while it may not yet: a frame has been
 * classified; or nothing is in the pipeline and no camera is still starting, i.e. the cameras
 * are waiting (offline, in backoff, disabled, paused, ended) or their frames failed, so an
 * unplugged camera does not fail the start. A camera still starting (first connection, first
 * frame on its way) and a first frame still in the worker are waited for.
 */
export function readyReason(s: PipelineSample, cameras: readonly CameraState[]): string | undefined {
  if (s.classified > 0) return 'first frame classified';
  if (framesInPipeline(s) > 0 || cameras.includes('starting')) return undefined;
  return cameras.includes('online') ? 'cameras deliver frames but none could be classified yet' : 'no camera has a frame yet';
}
