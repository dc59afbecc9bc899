/**
 * The update state file (`state_dir/update-state.json`) and its types: what is installed, the
 * previous version, refusals, probation, the last check and a validation under way. The model
 * store owns the state; this file only reads and writes it, atomically and durably.
 */
import { readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../core/logger.js';
import { fsyncPath, writeDurable } from './model-dirs.js';

export interface Probation {
  version: string;
  /** Epoch ms of the activation. */
  since: number;
  restarts: number;
  errors: number;
}

export interface UpdateState {
  installed?: string | undefined;
  previous?: string | undefined;
  refused: Record<string, { reason: string; at: number }>;
  probation?: Probation | undefined;
  lastCheck?: { at: number; result: string } | undefined;
  /** A candidate being validated (written before the validation starts). */
  validating?: { version: string; since: number } | undefined;
}

/** Why a version whose validation marker outlived its process is refused. */
export const DIED_VALIDATING = 'validation did not finish: the process died (out of memory?)';

/** State writes that failed for lack of space (see the top of model-store.ts). */
export interface WriteStatus {
  /** The state in memory is newer than the file: a write is waiting for room. */
  pending: boolean;
  /** Writes that failed for lack of space since start. */
  failures: number;
  /** The last failure's message; undefined once a write succeeded after it. */
  error?: string | undefined;
}

/** After recordRestart/recordInferenceError: `trip` is the rollback reason once a limit is hit. */
export interface ProbationStatus {
  active: boolean;
  restarts: number;
  errors: number;
  trip?: string;
}

const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);
export const isNoSpace = (err: unknown): boolean => NO_SPACE.has((err as NodeJS.ErrnoException).code ?? '');


/** undefined when the state file is missing (first start); a broken one is reported and reset. */
export async function readUpdateState(file: string, logger: Logger): Promise<UpdateState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const s = JSON.parse(text) as UpdateState;
    return { ...s, refused: s.refused ?? {} };
  } catch (err) {
    logger.error({ err, file }, 'update state unreadable, starting over');
    return undefined;
  }
}

/** tmp + fsync + rename + directory fsync; the tmp file is removed when the write fails. */
export async function writeUpdateState(file: string, state: UpdateState): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    await writeDurable(tmp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(tmp, file);
    await fsyncPath(dirname(file));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
