// ESLint 9 flat config: typescript-eslint's type-checked rules for the TypeScript sources,
// Prettier for formatting (run separately by `npm run lint`, so no formatting rules here).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/', 'docs/api/', 'coverage/', 'reports/', '.stryker-tmp/', 'node_modules/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Unused names are errors, but `_`-prefixed ones mark intentional ignores (callback arities, destructuring).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // Fire-and-forget promises are intentional where marked with `void` (the flush engine starts deliveries
      // it tracks itself); an unmarked floating promise is still an error.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      // Node stream callbacks and EventEmitter listeners are typed to return void but may be async; the engine
      // handles their rejections itself. Only check promises passed where a void *argument* is expected.
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false, attributes: false } },
      ],
      // A FlushFunction may be sync or async; `async` without `await` keeps its signature honest.
      '@typescript-eslint/require-await': 'off',
      // Template literals echo option values of any type in error messages (`Received ${value}`), as Node does.
      '@typescript-eslint/restrict-template-expressions': 'off',
      // The engine passes a sink's own rejection reason through untouched (it may not be an Error; wrapping it
      // would hide what the sink threw). Rejecting with a value of type `unknown` is therefore allowed.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
    },
  },
  {
    // Tests and examples: jest mocks and fixture sinks use loose typing by design.
    files: ['spec/**/*.ts', 'docs/examples/**/*.ts', 'benchmarks/**/*.ts'],
    rules: {
      // jest's expect(obj.method) and `expect(x).rejects` patterns trip this rule without being bugs.
      '@typescript-eslint/unbound-method': 'off',
      // jest's asymmetric matchers (expect.objectContaining, expect.any, ...) are typed `any` by jest itself;
      // passing them to toThrow()/toEqual() is the intended use, not an unsafe value leaking.
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
  {
    // Plain JS files (jest.config.js, this file, spec fixtures run as child processes) are CommonJS scripts
    // for Node, outside the TypeScript project: no type-checked rules, `require` allowed, Node's globals known.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      globals: Object.fromEntries(
        [
          'module',
          'exports',
          'require',
          '__dirname',
          '__filename',
          'process',
          'console',
          'Buffer',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
          'setImmediate',
          'clearImmediate',
          'AbortController',
          'AbortSignal',
          'URL',
          'performance',
          'structuredClone',
          'queueMicrotask',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
