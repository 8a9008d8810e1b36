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
    // who may import whom (DESIGN.md §1): config/ is below src/, src/ below plugins/ and routes/;
    // src/app.ts, src/server.ts and src/cli.ts compose them and are the only exceptions
    files: ['config/**/*.ts', 'src/**/*.ts', 'plugins/**/*.ts', 'routes/**/*.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', {
        zones: [
          { target: './config', from: './src', except: ['./lib'], message: 'config/ imports only src/lib/ from src/' },
          { target: './config', from: ['./plugins', './routes'], message: 'config/ imports only src/lib/' },
          { target: ['./src/!(app|server|cli).ts', './src/*/**'], from: ['./plugins', './routes'], message: 'src/ is below plugins/ and routes/: only the composition roots (src/app.ts, src/server.ts, src/cli.ts) import them' },
          { target: './routes', from: './plugins', message: 'routes use decorators, and types from src/' },
          { target: './plugins', from: './routes', message: 'plugins/ never imports routes/' },
          { target: './plugins', from: './plugins', message: 'a plugin uses another plugin through its decorators (declare it in dependencies), never its module' },
          // the embedded mock upstream is loaded only when asked (GATEWAY_UPSTREAM_URL=mock, the demo)
          { target: ['./src/!(cli|demo).ts', './src/*/**'], from: './mock', message: 'only src/cli.ts and src/demo.ts load the mock upstream' }
        ]
      }]
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
