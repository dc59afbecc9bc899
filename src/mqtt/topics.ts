/** Topic layout: B = base topic, D = device id. */
export interface Topics {
  /** `B`: the tree every device of this installation publishes under. */
  base: string;
  /** `B/D`: this device's own tree. */
  root: string;
  status: string;
  prediction(camera: string): string;
  cameraStatus(camera: string): string;
  label(camera: string, slug: string): string;
  stats: string;
  request(command: string): string;
  response(command: string): string;
  snapshot(camera: string): string;
  /** Model update state (over-the-air updates). */
  model: string;
  /** The outcome of the last configuration reload (SIGHUP). */
  config: string;
}

export function createTopics(base: string, device: string): Topics {
  const trimmed = base.replace(/\/+$/, '');
  const root = `${trimmed}/${device}`;
  return {
    base: trimmed,
    root,
    status: `${root}/status`,
    prediction: (camera) => `${root}/${camera}/prediction`,
    cameraStatus: (camera) => `${root}/${camera}/status`,
    label: (camera, slug) => `${root}/${camera}/label/${slug}`,
    stats: `${root}/stats`,
    request: (command) => `${root}/request/${command}`,
    response: (command) => `${root}/response/${command}`,
    snapshot: (camera) => `${root}/${camera}/snapshot`,
    model: `${root}/model`,
    config: `${root}/config`,
  };
}
