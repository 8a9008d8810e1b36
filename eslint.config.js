import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: [...resolveIgnoresFromGitignore(), 'dist/**'] }),
  {
    files: ['**/*.ts'],
    rules: {
      // `for await (const _chunk of stream)` drains a stream on purpose
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_' }]
    }
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // config tests write literal ${ENV} placeholders into YAML
      'no-template-curly-in-string': 'off'
    }
  }
]
