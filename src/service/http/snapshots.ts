import type { Frame } from '../../camera/frame.js';
import { frameJpeg } from '../../camera/frame-jpeg.js';

/**
 * The JPEG of each camera's latest frame, encoded once however many pages ask for it: preview
 * pages poll the same frame, and raw or PNG frames cost a sharp encode each.
 */
export class SnapshotCache {
  private readonly entries = new Map<string, { frame: Frame; jpeg: Promise<Buffer> }>();

  jpeg(camera: string, frame: Frame): Promise<Buffer> {
    const entry = this.entries.get(camera);
    // By identity, not seq: a paused and resumed source counts from 1 again.
    if (entry?.frame === frame) return entry.jpeg;
    const jpeg = frameJpeg(frame);
    this.entries.set(camera, { frame, jpeg });
    return jpeg;
  }

  clear(): void {
    this.entries.clear();
  }
}
