/** Topic layout: B = base topic, D = device id. */
export interface Topics {
  status: string;
  prediction(camera: string): string;
  cameraStatus(camera: string): string;
}

export function createTopics(base: string, device: string): Topics {
  const root = `${base.replace(/\/+$/, '')}/${device}`;
  return {
    status: `${root}/status`,
    prediction: (camera) => `${root}/${camera}/prediction`,
    cameraStatus: (camera) => `${root}/${camera}/status`,
  };
}
