// The ESM entry point (`import { skewClock } from 'timeskew'`): the CommonJS build re-exported, so
// both module systems share one copy of the library and of the loaded addon. Node finds the named
// exports of dist/index.js statically (cjs-module-lexer); test/esm.test.ts checks that every name
// the CommonJS entry exports is here too.
export * from '../dist/index.js';
export { default } from '../dist/index.js';
