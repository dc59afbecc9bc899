/**
 * The demo model's classes: named colours, as sRGB 0-255. The demo model is an honest
 * nearest-colour classifier over the image's mean colour (not an ImageNet model), and the
 * synthetic camera source paints scenes dominated by these colours, so the demo's labels
 * can be checked by eye.
 */
export interface PaletteColour {
  name: string;
  rgb: readonly [number, number, number];
}

export const DEMO_PALETTE: readonly PaletteColour[] = [
  { name: 'red', rgb: [220, 40, 40] },
  { name: 'orange', rgb: [240, 140, 30] },
  { name: 'yellow', rgb: [230, 210, 50] },
  { name: 'green', rgb: [40, 170, 60] },
  { name: 'blue', rgb: [40, 70, 210] },
  { name: 'purple', rgb: [130, 50, 170] },
  { name: 'white', rgb: [240, 240, 240] },
  { name: 'black', rgb: [20, 20, 20] },
];
