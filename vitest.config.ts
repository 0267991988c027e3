import { defineConfig } from 'vitest/config';

// Training tests do real (small) numeric work on 2 CPU cores: generous timeouts, and test
// files run one at a time so they do not fight over the cores (and over one native thread pool).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    globalSetup: ['test/global-setup.ts'],
  },
});
