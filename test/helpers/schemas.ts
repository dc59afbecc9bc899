import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';

const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)) && /T/.test(s));

function load(name: string): (data: unknown) => string[] {
  const schema = JSON.parse(readFileSync(new URL(`../../docs/schemas/${name}.schema.json`, import.meta.url), 'utf8')) as object;
  const validate = ajv.compile(schema);
  return (data) => (validate(data) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`));
}

/** Validation errors of a payload against the repo's JSON Schemas (empty = valid). */
export const schemaErrors = {
  prediction: load('prediction'),
  status: load('status'),
  cameraStatus: load('camera-status'),
  labelEvent: load('label-event'),
  stats: load('stats'),
  response: load('response'),
  modelUpdate: load('model-update'),
  configReport: load('config-report'),
};
