import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layers a domain may not reach into.
const ABOVE_DOMAINS = ['daemon', 'service', 'cli', 'bench', 'modelgen'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bin/**', '.tmp/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    // vitest's asymmetric matchers (expect.any, expect.stringMatching) are typed `any`.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unsafe-assignment': 'off' },
  },
  // Layers import downward only (ARCHITECTURE.md): core -> domains -> daemon and service -> cli.
  ...layerRules([
    { files: ['src/core/**'], may: 'nothing outside src/core', forbid: ['[a-z-]+'] },
    { files: ['src/config/**'], may: 'core', forbid: ['camera', 'vision', 'inference', 'mqtt', 'updates', 'rules', ...ABOVE_DOMAINS] },
    { files: ['src/{camera,vision,inference,mqtt,updates,rules}/**'], may: 'core and the domains', forbid: ABOVE_DOMAINS },
    { files: ['src/service/**'], may: 'core, the domains, and the daemon\'s types', forbid: ['cli', 'bench', 'modelgen'], typesOnly: ['daemon'] },
    { files: ['src/daemon/**'], may: 'core, the domains and service', forbid: ['cli', 'bench', 'modelgen'] },
    { files: ['src/{bench,modelgen}/**'], may: 'everything but the cli', forbid: ['cli'] },
  ]),
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);

/**
 * One no-restricted-imports entry per layer. `forbid` names top-level folders of src/ that
 * files of the layer may not import (at any depth of `../`); `typesOnly` ones only with
 * `import type`. A folder of src/ imported from inside it never matches: that is `./`.
 */
function layerRules(layers) {
  return layers.map(({ files, may, forbid, typesOnly = [] }) => {
    const message = `layers import downward only: ${files.join(', ')} may import ${may} (ARCHITECTURE.md)`;
    const pattern = (dirs) => `^(\\.\\./)+(${dirs.join('|')})/`;
    return {
      files,
      rules: {
        '@typescript-eslint/no-restricted-imports': [
          'error',
          {
            patterns: [
              { regex: pattern(forbid), message },
              ...(typesOnly.length > 0 ? [{ regex: pattern(typesOnly), message, allowTypeImports: true }] : []),
            ],
          },
        ],
      },
    };
  });
}
