// Runs once before any test file: victims are built here, not per test, so
// their compile time never counts against a test's timeout.
import { buildVictims } from './build-victims';

export default async function setup(): Promise<void> {
  await buildVictims();
}
