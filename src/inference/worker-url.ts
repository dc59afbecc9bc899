/** The compiled worker entry next to this module (dist/inference/worker.js). */
export function defaultWorkerUrl(): URL {
  return new URL('./worker.js', import.meta.url);
}
