import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir, writeColourModel } from '../helpers/fixtures.js';
import { buildVectorModel } from '../../src/modelgen/test-models.js';

// Broken configs and models: clear messages naming what is wrong, and the right exit status.

describe('startup errors', () => {
  let dir: string;
  let model: string;
  let labels: string;

  const config = (body: string): string => {
    const p = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(p, body);
    return p;
  };
  const cameras = (): string => `cameras:\n  - id: cam\n    source: { type: directory, path: ${dir} }\n`;

  beforeAll(() => {
    dir = tempDir();
    ({ model, labels } = writeColourModel(join(dir, 'm')));
  });

  it('an invalid config exits 78 and names every key path', async () => {
    const p = config(`model: { path: ${model}, labels: ${labels}, preset: resnet }\ncameras:\n  - id: cam\n    source: { type: directory, fps: 0 }\nmqtt: { qos: 3 }\n`);
    const r = await runCli(['run', '--config', p]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/model\.preset: .*"imagenet"\|"caffe-bgr"/);
    expect(r.stderr).toMatch(/cameras\[0\]\.source\.path: /);
    expect(r.stderr).toMatch(/cameras\[0\]\.source\.fps: .*>0/);
    expect(r.stderr).toMatch(/mqtt\.qos: /);
    const check = await runCli(['config', 'check', p]);
    expect(check.code).toBe(78);
    expect(check.stderr).toMatch(/model\.preset/);
  });

  it('a YAML syntax error and a missing config file exit 78', async () => {
    expect((await runCli(['run', '--config', config('model: [unclosed\n')])).code).toBe(78);
    const missing = await runCli(['run', '--config', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/nope\.yaml.*cannot read the file/s);
  });

  it('an environment override is validated like the file, naming the variable', async () => {
    const p = config(`model: { path: ${model}, labels: ${labels} }\n${cameras()}`);
    const r = await runCli(['config', 'check', p], { env: { EDGE_CLASSIFIER__MQTT__QOS: '7' } });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/mqtt\.qos: .*\(set by EDGE_CLASSIFIER__MQTT__QOS\)/);
  });

  it('config check accepts a good config and reports files that do not exist', async () => {
    const ok = await runCli(['config', 'check', config(`model: { path: ${model}, labels: ${labels} }\n${cameras()}`)]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/ok/);
    const bad = await runCli(['config', 'check', config(`model: { path: ${dir}/missing.onnx, labels: ${labels} }\n${cameras()}`)]);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/model\.path: no such file or directory: .*missing\.onnx/);
  });

  it('config schema prints the JSON Schema generated from the zod schema', async () => {
    const r = await runCli(['config', 'schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { properties: Record<string, { properties?: Record<string, unknown> }> };
    expect(Object.keys(schema.properties.model?.properties ?? {})).toEqual(
      expect.arrayContaining(['path', 'labels', 'preset', 'execution_providers']),
    );
  });

  it('a missing model file is a clear startup error', async () => {
    const r = await runCli(['run', '--config', config(`model: { path: ${dir}/gone.onnx, labels: ${labels} }\n${cameras()}`)]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/model file not found: .*gone\.onnx/);
  });

  it('a missing or empty labels file is a configuration error (78), by its error class', async () => {
    const missing = await runCli(['run', '--config', config(`model: { path: ${model}, labels: ${dir}/gone.txt }\n${cameras()}`)]);
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/cannot read labels file .*gone\.txt/);
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '\n');
    const r = await runCli(['run', '--config', config(`model: { path: ${model}, labels: ${empty} }\n${cameras()}`)]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/labels file .*empty\.txt is empty/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a model whose output does not match the labels is refused at startup', async () => {
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'red\ngreen\n');
    const r = await runCli(['run', '--config', config(`model: { path: ${model}, labels: ${short}, execution_providers: [cpu] }\n${cameras()}`)]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/8 classes .* labels file has 2 lines/);
  });

  it('a model whose input does not fit the preset is refused at startup, with a hint', async () => {
    const nhwc = writeColourModel(join(dir, 'nhwc'), { layout: 'nhwc' });
    const r = await runCli(['run', '--config', config(`model: { path: ${nhwc.model}, labels: ${nhwc.labels}, execution_providers: [cpu] }\n${cameras()}`)]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/shape \[1,224,224,3\].*nhwc/);
    const vec = join(dir, 'vector.onnx');
    writeFileSync(vec, buildVectorModel());
    const r2 = await runCli(['run', '--config', config(`model: { path: ${vec}, labels: ${labels}, execution_providers: [cpu] }\n${cameras()}`)]);
    expect(r2.code).toBe(78);
    expect(r2.stderr).toMatch(/takes 4 dimensions/);
  });

  it('a file that is not a model is a clear load error', async () => {
    const junk = join(dir, 'junk.onnx');
    writeFileSync(junk, 'definitely not protobuf');
    const r = await runCli(['run', '--config', config(`model: { path: ${junk}, labels: ${labels}, execution_providers: [cpu] }\n${cameras()}`)]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/cannot load model .*junk\.onnx: cpu: /);
  });

  it('config bombs exit 78 with the key path, no stack trace, and promptly', async () => {
    // Issue 12: the alias bomb exited 1 with a raw stack trace (so systemd kept restarting),
    // and the far list index hung at 2.2 GB until it was killed.
    const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
    const bomb = levels
      .map((k, i) => (i === 0 ? `${k}: &${k} [lol, lol, lol, lol, lol, lol, lol, lol, lol]` : `${k}: &${k} [${Array(9).fill(`*${levels[i - 1]}`).join(', ')}]`))
      .join('\n    ');
    const p = config(`model: { path: ${model}, labels: ${labels} }\n${cameras()}mqtt:\n  x-bomb:\n    ${bomb}\n`);
    const r = await runCli(['run', '--config', p]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/mqtt\.x-bomb\.b: YAML aliases expand too far/);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const good = config(`model: { path: ${model}, labels: ${labels} }\n${cameras()}`);
    const far = await runCli(['run', '--config', good], { env: { EDGE_CLASSIFIER__CAMERAS__4294967294__ID: 'x' } });
    expect(far.code).toBe(78);
    expect(far.stderr).toMatch(/cameras\[4294967294\]: list index 4294967294 is out of range.*\(set by EDGE_CLASSIFIER__CAMERAS__4294967294__ID\)/);
    const check = await runCli(['config', 'check', good], { env: { EDGE_CLASSIFIER__CAMERAS__4294967294__ID: 'x' } });
    expect(check.code).toBe(78);
  });

  it('a 60 MB config file is refused before it is parsed, exit 78', async () => {
    // Issue 12 "held": it did, but parsing it cost 2.2 GB of RSS and 8 s, more than a Pi has.
    const p = config(`model: { path: ${model}, labels: ${labels} }\n${cameras()}notes: "${'a'.repeat(60_000_000)}"\n`);
    const r = await runCli(['run', '--config', p]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/\(root\): the file is 600\d{5} bytes; a configuration is at most 4194304/);
  });

  it('an unreadable secret file named by the config exits 78 with its key', async () => {
    const p = config(`model: { path: ${model}, labels: ${labels}, execution_providers: [cpu] }\n${cameras()}mqtt: { url: "mqtt://127.0.0.1:9", password_file: ${dir}/no-such-secret }\nstate_dir: ${dir}/state\nhttp: { enabled: false }\n`);
    const r = await runCli(['run', '--config', p]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/mqtt\.password_file: cannot read .*no-such-secret/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('usage errors exit 64', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(64);
    expect((await runCli(['classify', '--model', model])).code).toBe(64);
    // node:util parseArgs throws a TypeError on unknown options: still a usage error.
    for (const command of [['demo'], ['run'], ['bench'], ['model', 'synth'], ['release', 'verify']]) {
      const r = await runCli([...command, '--frobnicate']);
      expect(r.code, command.join(' ')).toBe(64);
      expect(r.stderr, command.join(' ')).toMatch(/Unknown option '--frobnicate'[\s\S]*usage: edge-classifier/);
    }
  });

  it('<command> --help, -h and help <command> print that command\'s usage to stdout and exit 0', async () => {
    const commands = ['classify', 'run', 'demo', 'model', 'config', 'release', 'bench'];
    const calls = [
      ...commands.map((c) => [c, '--help']),
      ['run', '-h'],
      ['classify', '--model', model, '--help'], // help wins over missing options
      ['run', '--config', join(dir, 'nope.yaml'), '--help'], // and starts nothing
      ['release', 'publish', '-h'],
      ['help', 'classify'],
      ['help', 'config'],
    ];
    const results = await Promise.all(calls.map((args) => runCli(args)));
    results.forEach((r, i) => {
      const args = calls[i]!;
      const command = args[0] === 'help' ? args[1]! : args[0]!;
      expect([r.code, r.stderr], args.join(' ')).toEqual([0, '']);
      expect(r.stdout, args.join(' ')).toMatch(new RegExp(`^usage: edge-classifier ${command} `));
      expect(r.stdout, args.join(' ')).not.toMatch(/usage: edge-classifier <command>/); // the command's, not the overview
    });
    expect(results[1]!.stdout).toMatch(/^usage: edge-classifier run --config FILE\n {2}Runs the daemon/);
    // After `--`, --help is an argument, not an option; help for an unknown command is a usage error.
    expect((await runCli(['run', '--', '--help'])).code).toBe(64);
    const unknown = await runCli(['help', 'frobnicate']);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toMatch(/no help for unknown command "frobnicate"/);
    expect((await runCli(['help'])).stdout).toMatch(/usage: edge-classifier <command>/);
  });
});
