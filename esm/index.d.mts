// Types of the ESM entry point: the same declarations as the CommonJS one.
export * from '../dist/index.js';
import * as timeskew from '../dist/index.js';
export default timeskew;
