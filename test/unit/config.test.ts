import { describe, it, expect } from 'vitest';
import { z } from 'zod';
import { parseConfig, ConfigError, configJsonSchema } from '../../src/config/load.js';

const minimal = `
model: { path: m.onnx, labels: l.txt }
cameras:
  - id: photos
    source: { type: directory, path: ./photos }
`;

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, 'test.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('fills defaults', () => {
    const cfg = parseConfig(minimal, 'test.yaml');
    expect(cfg.mqtt.url).toBe('embedded');
    expect(cfg.mqtt.base_topic).toBe('edge-classifier');
    expect(cfg.mqtt.qos).toBe(1);
    expect(cfg.publish.top_k).toBe(5);
    expect(cfg.model.preset).toBe('imagenet');
    expect(cfg.model.execution_providers).toEqual(['tensorrt', 'cuda', 'cpu']);
    expect(cfg.device_id).toMatch(/^[a-z0-9][a-z0-9_-]*$/i);
    const cam = cfg.cameras[0];
    expect(cam?.source).toEqual({ type: 'directory', path: './photos', fps: 1, loop: false, realtime: false, max_file_bytes: 32 * 1024 * 1024, read_timeout_ms: 5_000 });
  });

  it('accepts the example from the README/issue', () => {
    const cfg = parseConfig(
      `device_id: demo-01
model:
  path: ../shared/models/mobilenetv2-12-int8.onnx
  labels: ../shared/labels/synset.txt
  preset: imagenet
  execution_providers: [tensorrt, cuda, cpu]
cameras:
  - id: photos
    source: { type: directory, path: ../shared/images/photos, fps: 10, loop: false }
mqtt:
  url: mqtt://127.0.0.1:1883
  base_topic: edge-classifier
publish: { top_k: 5 }
`,
      'x',
    );
    expect(cfg.device_id).toBe('demo-01');
    expect(cfg.cameras[0]?.source).toMatchObject({ fps: 10 });
  });

  it('names the key path of every problem', () => {
    const found = problems(`
model: { path: m.onnx, labels: l.txt, preset: foo }
cameras:
  - id: a
    source: { type: directory, path: x, fps: -1 }
  - id: "bad id"
    source: { type: ftp }
mqtt: { urll: x }
`);
    const text = found.join('\n');
    expect(text).toMatch(/^model\.preset: .*imagenet.*caffe-bgr/m);
    expect(text).toMatch(/^cameras\[0\]\.source\.fps: .*>0/m);
    expect(text).toMatch(/^cameras\[1\]\.id: /m);
    expect(text).toMatch(/^cameras\[1\]\.source\.type: /m);
    expect(text).toMatch(/^mqtt: unknown key "urll"/m);
  });

  it('reports missing required keys and YAML syntax errors', () => {
    expect(problems('cameras: []').join('\n')).toMatch(/^model: /m);
    expect(problems('model: {path: [').join('\n')).toMatch(/YAML syntax/);
    expect(problems('- a\n- b').join('\n')).toMatch(/expected a mapping/);
  });

  it('rejects duplicate camera ids', () => {
    const text = `${minimal}  - id: photos\n    source: { type: synthetic }\n`;
    expect(problems(text).join('\n')).toMatch(/^cameras: camera ids must be unique/m);
  });

  it('applies environment overrides with types and names the variable on error', () => {
    const cfg = parseConfig(minimal, 'x', {
      EDGE_CLASSIFIER__MQTT__URL: 'mqtt://broker:1884',
      EDGE_CLASSIFIER__CAMERAS__0__SOURCE__FPS: '2.5',
      EDGE_CLASSIFIER__MODEL__EXECUTION_PROVIDERS: '[cuda, cpu]',
      EDGE_CLASSIFIER__DEVICE_ID: 'pole-7',
      UNRELATED: 'x',
    });
    expect(cfg.mqtt.url).toBe('mqtt://broker:1884');
    expect(cfg.cameras[0]?.source.fps).toBe(2.5);
    expect(cfg.model.execution_providers).toEqual(['cuda', 'cpu']);
    expect(cfg.device_id).toBe('pole-7');
    const found = problems(minimal, { EDGE_CLASSIFIER__PUBLISH__TOP_K: 'lots' });
    expect(found.join('\n')).toMatch(/^publish\.top_k: .*\(set by EDGE_CLASSIFIER__PUBLISH__TOP_K\)/m);
  });

  it('bounds list indexes in environment overrides: an existing entry or the next one, nothing past it', () => {
    // Issue 12: CAMERAS__4294967294__ID made a 4-billion-slot array and hung at 2.2 GB.
    const far = problems(minimal, { EDGE_CLASSIFIER__CAMERAS__4294967294__ID: 'x' });
    expect(far).toEqual([
      'cameras[4294967294]: list index 4294967294 is out of range: this list has 1 entries, so the index must be 0 to 1 (set by EDGE_CLASSIFIER__CAMERAS__4294967294__ID)',
    ]);
    const appended = parseConfig(minimal, 'x', {
      EDGE_CLASSIFIER__CAMERAS__1__ID: 'yard',
      EDGE_CLASSIFIER__CAMERAS__1__SOURCE__TYPE: 'synthetic',
    });
    expect(appended.cameras.map((c) => c.id)).toEqual(['photos', 'yard']);
    expect(problems(minimal, { EDGE_CLASSIFIER__CAMERAS__2__ID: 'gap' }).join('\n')).toMatch(/^cameras\[2\]: list index 2 is out of range.*0 to 1/);
    expect(problems(minimal, { EDGE_CLASSIFIER__WATCH__0__LABEL: 'cat', EDGE_CLASSIFIER__WATCH__5000__LABEL: 'dog' }).join('\n')).toMatch(
      /^watch\[5000\]: list index 5000 is out of range: this list has 1 entries/m,
    );
    expect(problems(minimal, { EDGE_CLASSIFIER__CAMERAS__FIRST__ID: 'x' })).toEqual([
      'cameras.first: expected a list index here, got "first" (set by EDGE_CLASSIFIER__CAMERAS__FIRST__ID)',
    ]);
  });

  it('an alias bomb is a ConfigError naming where the first alias sits', () => {
    const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const bomb = levels
      .map((k, i) => (i === 0 ? `${k}: &${k} [lol, lol, lol, lol, lol, lol, lol, lol, lol]` : `${k}: &${k} [${Array(9).fill(`*${levels[i - 1]}`).join(', ')}]`))
      .join('\n');
    const found = problems(`${minimal}x-bomb:\n${bomb.replace(/^/gm, '  ')}\n`);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^x-bomb\.b: YAML aliases expand too far .*Excessive alias count/);
  });

  it('nesting deep enough to overflow the parser is a ConfigError, not a crash', () => {
    const found = problems(`a: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
    expect(found[0]).toMatch(/^YAML syntax: Maximum call stack size exceeded/);
  });

  it('generates a JSON Schema from the zod schema', () => {
    const schema = configJsonSchema(z) as { properties: Record<string, unknown>; required: string[] };
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['device_id', 'model', 'cameras', 'mqtt', 'publish']),
    );
    expect(schema.required).toEqual(expect.arrayContaining(['model', 'cameras']));
    expect(schema.required).not.toContain('mqtt');
  });
});
