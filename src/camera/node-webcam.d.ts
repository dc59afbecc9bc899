// The part of node-webcam (untyped, CommonJS) that the webcam source uses.
declare module 'node-webcam' {
  interface FSWebcamOptions {
    width: number;
    height: number;
    quality: number;
    output: 'jpeg' | 'png';
    device: string | false;
    skip?: number;
    delay?: number;
    frames?: number;
    verbose?: boolean;
    callbackReturn?: 'location' | 'buffer' | 'base64';
  }
  interface FSWebcam {
    /** The fswebcam shell command for one shot written to `location` (used verbatim by capture()). */
    generateSh(location: string): string;
  }
  const NodeWebcam: { FSWebcam: new (options: FSWebcamOptions) => FSWebcam };
  export default NodeWebcam;
}
