// The raw addon, for tests of internals that the public API does not expose (the hook planner).
import path from 'node:path';
import type { NativeBinding } from '../../types/native';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => unknown;

export const binding = load(path.join(__dirname, '..', '..')) as NativeBinding;
