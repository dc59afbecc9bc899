import { writeFileSync } from 'node:fs';
import { publishedSchemaFiles } from './published-schemas.js';

// `npm run schemas`: regenerates docs/schemas/*.json from the zod payload schemas. The folder is
// found from this file, so it is the repository's whatever the working directory.

const dir = new URL('../../docs/schemas/', import.meta.url);
for (const { file, text } of publishedSchemaFiles()) {
  writeFileSync(new URL(file, dir), text);
  console.log(`docs/schemas/${file}`);
}
