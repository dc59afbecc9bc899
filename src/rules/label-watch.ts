import type { WatchRule } from '../config/mqtt-schema.js';

export interface ResolvedRule extends WatchRule {
  index: number;
  slug: string;
}

export interface LabelEvent {
  camera: string;
  slug: string;
  label: string;
  state: 'ON' | 'OFF';
  score: number;
}

/** "tabby, tabby cat" -> "tabby-tabby-cat": safe in topics and Home Assistant ids. */
export function slugify(label: string): string {
  const slug = label
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '') // combining accents left by NFKD
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return slug || 'label';
}

/** Binds rules to label indices; an unknown label is a configuration error naming the rule. */
export function resolveRules(rules: WatchRule[], labels: readonly string[]): ResolvedRule[] {
  return rules.map((rule, i) => {
    const index = labels.indexOf(rule.label);
    if (index < 0) {
      const near = labels.filter((l) => l.toLowerCase().includes(rule.label.toLowerCase())).slice(0, 3);
      const hint = near.length ? `; did you mean ${near.map((n) => `"${n}"`).join(', ')}?` : '';
      throw new Error(`watch[${i}].label: "${rule.label}" is not in the labels file${hint}`);
    }
    return { ...rule, index, slug: rule.name ? slugify(rule.name) : slugify(rule.label) };
  });
}

interface RuleState {
  on: boolean | undefined;
  streak: number;
}

/**
 * Debounced presence of watched labels per camera: a label switches ON after `frames`
 * consecutive frames at or above `min_score`, and OFF after `frames` consecutive frames
 * below it. The first state is reported once it is established either way.
 */
export class LabelWatcher {
  private readonly states = new Map<string, RuleState>();

  // Not readonly: a configuration reload replaces the rules (setRules).
  constructor(private rules: readonly ResolvedRule[]) {}

  /**
   * New rules (configuration reload). A rule that stays (same camera and slug) keeps its
   * debounce state, so an unchanged label does not flap; states of the others are dropped.
   */
  setRules(rules: readonly ResolvedRule[]): void {
    this.rules = rules;
    for (const key of [...this.states.keys()]) {
      const [camera = '', slug] = key.split('\u0000');
      if (!this.rulesFor(camera).some((r) => r.slug === slug)) this.states.delete(key);
    }
  }

  /** Drops a removed camera's states. */
  forget(camera: string): void {
    for (const key of [...this.states.keys()]) if (key.startsWith(`${camera}\u0000`)) this.states.delete(key);
  }

  /** Label indices whose scores `update` needs. */
  get indices(): number[] {
    return [...new Set(this.rules.map((r) => r.index))];
  }

  rulesFor(camera: string): ResolvedRule[] {
    return this.rules.filter((r) => !r.cameras || r.cameras.includes(camera));
  }

  /**
   * `score(index)` gives this frame's probability of a label; undefined when the frame was
   * classified before the rule existed (a reload), which leaves the rule's state as it is.
   * Returns the switches.
   */
  update(camera: string, score: (index: number) => number | undefined): LabelEvent[] {
    const events: LabelEvent[] = [];
    for (const rule of this.rulesFor(camera)) {
      const key = `${camera}\u0000${rule.slug}`;
      const st = this.states.get(key) ?? { on: undefined, streak: 0 };
      const s = score(rule.index);
      if (s === undefined) continue;
      const present = s >= rule.min_score;
      if (st.on === present) {
        st.streak = 0;
      } else {
        st.streak++;
        if (st.streak >= rule.frames) {
          st.on = present;
          st.streak = 0;
          events.push({ camera, slug: rule.slug, label: rule.label, state: present ? 'ON' : 'OFF', score: Math.round(s * 1e6) / 1e6 });
        }
      }
      this.states.set(key, st);
    }
    return events;
  }

  /** Current state per camera and slug (undefined until established). */
  state(camera: string, slug: string): boolean | undefined {
    return this.states.get(`${camera}\u0000${slug}`)?.on;
  }
}
