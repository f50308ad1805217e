// Resolve hook for from-source.mjs: `tinyedge` and `tinyedge/<entry>` go to the module the package
// builds that entry from, src/index.ts and src/<entry>/index.ts (package.json `exports` maps the
// same entries to dist/), so examples run in the repository exactly as they are written. An entry
// that package.json does not export is left to Node, which refuses it as it would for a user.
import { readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));

export async function resolve(specifier, context, next) {
  if (specifier !== pkg.name && !specifier.startsWith(`${pkg.name}/`)) return next(specifier, context);
  const entry = specifier.slice(pkg.name.length + 1);
  if (pkg.exports !== undefined && pkg.exports[entry === '' ? '.' : `./${entry}`] === undefined) return next(specifier, context);
  // Passed on as a file URL, so that tsx's resolver, next in the chain, marks it TypeScript.
  return next(new URL(entry === '' ? 'src/index.ts' : `src/${entry}/index.ts`, root).href, context);
}
