/** Child processes run the build (dist/); see test/util/build.ts. */
import { ensureBuilt as ensure } from '../util/build.js';

export { ROOT } from '../util/build.js';

export function ensureBuilt(needed: readonly string[]): void {
  ensure(...needed);
}
