import { describe, expect, it } from 'vitest';
import { checkPipeline, describePipeline, pipelineWords, redactPipelineText } from '../../src/camera/gstreamer-source.js';

describe('gst-launch pipeline handling', () => {
  it('splits into argv words at whitespace outside double quotes', () => {
    expect(pipelineWords('videotestsrc  is-live=true ! capsfilter caps="video/x-raw, width=64" ! fdsink')).toEqual([
      'videotestsrc',
      'is-live=true',
      '!',
      'capsfilter',
      'caps="video/x-raw, width=64"',
      '!',
      'fdsink',
    ]);
    expect(pipelineWords('a text="say \\"hi there\\"" ! fdsink')).toEqual(['a', 'text="say \\"hi there\\""', '!', 'fdsink']);
    expect(() => pipelineWords('a text="open ! fdsink')).toThrow(/unbalanced double quote/);
  });

  it('accepts pipelines ending in fdsink (fd 1), with or without spaces around !', () => {
    expect(() => checkPipeline('videotestsrc ! jpegenc ! fdsink')).not.toThrow();
    expect(() => checkPipeline('videotestsrc!jpegenc!fdsink')).not.toThrow();
    expect(() => checkPipeline('v4l2src ! video/x-raw,format=RGB ! fdsink fd=1 sync=false')).not.toThrow();
  });

  it('rejects anything else with a clear message', () => {
    expect(() => checkPipeline('videotestsrc ! jpegenc ! filesink location=x.jpg')).toThrow(
      'gstreamer pipeline must end in "fdsink" (frames are read from gst-launch\'s stdout), but it ends in "filesink"',
    );
    expect(() => checkPipeline('videotestsrc ! jpegenc')).toThrow(/ends in "jpegenc"/);
    expect(() => checkPipeline('videotestsrc ! fdsink ! jpegenc')).toThrow(/must end in "fdsink"/);
    expect(() => checkPipeline('videotestsrc ! fdsink fd=2')).toThrow('gstreamer pipeline: fdsink must write to stdout (fd=1), not fd=2');
    expect(() => checkPipeline('   ')).toThrow(/empty/);
    // "!" inside quotes is not an element boundary.
    expect(() => checkPipeline('videotestsrc ! identity name="a ! fdsink"')).toThrow(/ends in "identity"/);
  });

  it('describes a pipeline by its first element and redacts credentials', () => {
    expect(describePipeline('nvarguscamerasrc sensor-id=0 ! nvjpegenc ! fdsink')).toBe('gstreamer:nvarguscamerasrc');
    const text = 'rtspsrc location=rtsp://admin:hunter2@10.0.0.9/s1 user-id=admin user-pw="pa ss" ! fdsink';
    const redacted = redactPipelineText(text);
    expect(redacted).toBe('rtspsrc location=rtsp://***@10.0.0.9/s1 user-id=admin user-pw=*** ! fdsink');
  });
});
