/**
 * The decision of the validation gate, as pure functions: does the device compute what the
 * publisher computed, and is the model right where a person said what an image shows?
 *
 * Why not "same top-1 as the publisher": onnxruntime's int8 kernels differ by CPU (x64 AVX2
 * without VNNI, x64 VNNI and arm64 NEON round differently), so a good int8 model flips its top-1
 * on a fifth of ordinary photos between two CPUs (MobileNetV2-int8: 58/72 between AVX2 and
 * arm64). Those flips are near ties. What a broken release changes instead is the whole
 * probability vector, and the confident answers with it. So the gate compares, per image, the
 * device's probabilities with the publisher's recorded top-K (a total-variation distance),
 * averaged over the set, and requires the top-1 to agree only where the publisher's model was
 * confident. Ground-truth labels, given by name, catch what self-consistency cannot: labels
 * shuffled against the model's outputs, or a model that was already broken when published.
 * The margins measured on the real models are in docs/updates.md ("Validation across CPUs").
 */

/** One class of the publisher's output for an image, as a probability. */
export interface ReferenceScore {
  index: number;
  p: number;
}

/** What the release says about one validation image (model.json `validation[]`). */
export interface ReferenceImage {
  /** The publisher's top-1 (every release has it; older releases have nothing else). */
  expectedIndex: number;
  /** The publisher's top-K probabilities, best first. */
  top?: ReferenceScore[] | undefined;
  /** Label names a person accepts for this image (any one is right). */
  truth?: string[] | undefined;
}

export interface GateThresholds {
  /** Share of the confident reference images whose top-1 must match (all images in old releases). */
  min_top1_agreement: number;
  /** Mean total-variation distance allowed between the publisher's and the device's probabilities. */
  max_mean_distance: number;
  /** Truth accuracy may fall this far below the publisher's (or the serving model's) on the same images. */
  max_accuracy_drop: number;
  /** Truth accuracy below this refuses the model whatever the others scored. */
  min_accuracy: number;
}

/** Reference images whose top-1 is at least this probability, and this far ahead of the second, must agree. */
export const CONFIDENT_P = 0.5;
export const CONFIDENT_MARGIN = 0.25;
/** How many classes the publisher records per image: enough to carry almost all of the mass. */
export const REFERENCE_TOP_K = 10;

export interface SetVerdict {
  /** Images whose top-1 was compared (the confident ones, or all in an old release). */
  compared: number;
  matched: number;
  /** Mean distance over the images that carry a reference vector; undefined without any. */
  meanDistance: number | undefined;
  /** Images with truth labels, and how many of those the device got right. */
  labelled: number;
  correct: number;
  reasons: string[];
}

const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`;

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/** True when every value is a finite number; NaN or ±Infinity in an output means a broken model or preprocessing. */
export function allFinite(v: ArrayLike<number>): boolean {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) return false;
  return true;
}

/**
 * Total-variation distance (0 = same, 1 = disjoint) between the publisher's distribution and the
 * device's, on the partition {each recorded class} + {everything else}: the publisher only
 * records its top-K, and the rest is one bucket on both sides.
 */
export function referenceDistance(ref: readonly ReferenceScore[], probs: ArrayLike<number>): number {
  let sum = 0;
  let refRest = 1;
  let devRest = 1;
  for (const { index, p } of ref) {
    const q = probs[index] ?? 0;
    sum += Math.abs(p - q);
    refRest -= p;
    devRest -= q;
  }
  return (sum + Math.abs(Math.max(0, refRest) - Math.max(0, devRest))) / 2;
}

/** The publisher's record of one image: its top-K probabilities, rounded to keep model.json small. */
export function referenceTop(probs: ArrayLike<number>, k = REFERENCE_TOP_K): ReferenceScore[] {
  const order = Array.from({ length: probs.length }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
  return order.slice(0, k).map((index) => ({ index, p: Math.round(probs[index]! * 1e5) / 1e5 }));
}

export function isConfident(top: readonly ReferenceScore[]): boolean {
  const first = top[0]?.p ?? 0;
  const second = top[1]?.p ?? 0;
  return first >= CONFIDENT_P && first - second >= CONFIDENT_MARGIN;
}

/**
 * Compares the device's probabilities for each image of a set with the release's record.
 * `labels` are the release's label names (truth is matched by name, so a labels file shuffled
 * against the model's outputs fails). `where` names the set in the reasons.
 */
export function judgeSet(images: readonly { ref: ReferenceImage; probs: ArrayLike<number> }[], labels: readonly string[], thresholds: GateThresholds, where: string): SetVerdict {
  const v: SetVerdict = { compared: 0, matched: 0, meanDistance: undefined, labelled: 0, correct: 0, reasons: [] };
  const withTop = images.filter((i) => i.ref.top && i.ref.top.length > 0);
  let distance = 0;
  for (const { ref, probs } of images) {
    const top1 = argmax(probs);
    if (ref.top && ref.top.length > 0) {
      distance += referenceDistance(ref.top, probs);
      if (isConfident(ref.top)) {
        v.compared++;
        if (top1 === ref.expectedIndex) v.matched++;
      }
    } else if (withTop.length === 0) {
      // A release from before reference vectors: every image's top-1, as then.
      v.compared++;
      if (top1 === ref.expectedIndex) v.matched++;
    }
    if (ref.truth && ref.truth.length > 0) {
      v.labelled++;
      if (ref.truth.includes(labels[top1] ?? '')) v.correct++;
    }
  }
  if (withTop.length > 0) v.meanDistance = distance / withTop.length;
  const minAgree = thresholds.min_top1_agreement;
  if (v.compared > 0 && v.matched < minAgree * v.compared) {
    const which = withTop.length > 0 ? " (the images the publisher's model was confident about)" : '';
    v.reasons.push(`top-1 agreement ${v.matched}/${v.compared} below ${pct(minAgree)} on ${where}${which}`);
  }
  if (v.meanDistance !== undefined && v.meanDistance > thresholds.max_mean_distance) {
    v.reasons.push(`outputs differ from the publisher's by ${v.meanDistance.toFixed(3)} on average (total variation, max ${thresholds.max_mean_distance}) on ${where}`);
  }
  if (v.labelled > 0 && v.correct < thresholds.min_accuracy * v.labelled) {
    v.reasons.push(`accuracy ${v.correct}/${v.labelled} on the labelled images of ${where} is below the minimum ${pct(thresholds.min_accuracy)}`);
  }
  return v;
}

/**
 * Truth accuracy against another measurement of the same images (the publisher's record, or the
 * serving model on this device): a drop beyond `max_accuracy_drop`, plus one image of slack for
 * small sets, refuses the candidate.
 */
export function accuracyDrop(candidate: { correct: number; labelled: number }, other: { correct: number; labelled: number }, maxDrop: number, what: string): string | undefined {
  if (candidate.labelled === 0 || other.labelled !== candidate.labelled) return undefined;
  const allowed = other.correct - maxDrop * other.labelled - 1;
  if (candidate.correct >= allowed) return undefined;
  return `accuracy ${candidate.correct}/${candidate.labelled} is more than ${pct(maxDrop)} below ${what} (${other.correct}/${other.labelled})`;
}
