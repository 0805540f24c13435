import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/build/**',
      'node_modules/**',
      'data/**',
      'models/**',
      '.eval/**',
      'reports/**',
      '.cache/**',
      '.gpu-pack/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always'],
      'no-console': 'error',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', fetch: 'readonly', Buffer: 'readonly' },
    },
  },
  {
    files: ['apps/gateway/console/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        ['document', 'window', 'location', 'sessionStorage', 'fetch', 'FormData', 'DOMParser', 'Node', 'URL'].map(
          (name) => [name, 'readonly'],
        ),
      ),
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Without a message, Node builds one by re-parsing the test file from the failing call;
      // under tsx that once took 450 s for a single failure in test/pipeline/pipeline.test.ts.
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name='assert'][callee.property.name='ok'][arguments.length<2]",
          message: 'give assert.ok a message (Node can take minutes to generate one under tsx)',
        },
        {
          selector: "CallExpression[callee.name='assert'][arguments.length<2]",
          message: 'give assert a message (Node can take minutes to generate one under tsx)',
        },
      ],
    },
  },
);
