// The YAML side of config loading: parse with positions kept, substitute `${NAME}` references in
// string values, and map a problem's path (`tenants[0].token`) back to a line of the file. The
// document API is used instead of `YAML.parse` because only it keeps each node's source range.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';

export type Segment = string | number;

/** A problem before its path is formatted; `line` is looked up later when not known here. */
export interface RawProblem {
  path: Segment[];
  message: string;
  line?: number;
}

export interface YamlFile {
  /** The document as plain data (after interpolation); meaningless when `errors` is not empty. */
  data: unknown;
  /** YAML syntax errors: nothing else can be trusted when there are some. */
  errors: RawProblem[];
  /** Unset variables and malformed references; the text is left as written, so checking goes on. */
  interpolationErrors: RawProblem[];
  warnings: RawProblem[];
  /** Line of the node at `path`, or of its nearest ancestor present in the file. */
  lineOf(path: readonly Segment[]): number | undefined;
}

export type Env = Record<string, string | undefined>;

/** Parses `text` and interpolates environment references into its string values. */
export function readYaml(text: string, env: Env): YamlFile {
  const lines = new LineCounter();
  // prettyErrors off: we want the bare message and place it ourselves as `<file>:<line>:`.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, merge: true, uniqueKeys: true });
  const lineAt = (node: unknown): number | undefined => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? lines.linePos(range[0]).line : undefined;
  };
  const errors: RawProblem[] = doc.errors.map((e) => {
    const line = lines.linePos(e.pos[0]).line;
    const start = lines.lineStarts[line - 1] ?? 0;
    const source = text.slice(start, lines.lineStarts[line] ?? text.length);
    // `{ KEY: ${X} }` is a YAML error, not an interpolation one: `{` and `}` end a flow value.
    const hint = source.includes('${') ? ' (inside [ ] or { }, quote a value that uses ${…})' : '';
    return { path: [], message: `invalid YAML: ${e.message}${hint}`, line };
  });
  const warnings: RawProblem[] = doc.warnings.map((w) => ({ path: [], message: `YAML: ${w.message}`, line: lines.linePos(w.pos[0]).line }));

  const lineOf = (path: readonly Segment[]): number | undefined => {
    let node: unknown = doc.contents;
    let line = lineAt(node);
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
        if (!pair) break;
        // The key's line: the value of `origins:` may start lines below it, or be missing.
        line = lineAt(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
        node = node.items[seg];
        line = lineAt(node) ?? line;
      } else {
        break;
      }
    }
    return line;
  };

  const interpolationErrors: RawProblem[] = [];
  if (errors.length === 0) interpolateTree(doc, env, interpolationErrors, lineAt);
  return { data: errors.length === 0 ? doc.toJS() : undefined, errors, interpolationErrors, warnings, lineOf };
}

/** Walks the document, rewriting string scalars in place; keys are never interpolated. */
function interpolateTree(doc: Document, env: Env, errors: RawProblem[], lineAt: (node: unknown) => number | undefined): void {
  const walk = (node: unknown, path: Segment[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) walk(pair.value, [...path, String(isScalar(pair.key) ? pair.key.value : pair.key)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    } else if (isScalar(node) && typeof node.value === 'string') {
      const r = interpolate(node.value, env);
      if (typeof r === 'string') node.value = r;
      else errors.push({ path, message: r.error, line: lineAt(node) });
    }
    // Aliases point at a node visited where it is anchored.
  };
  walk(doc.contents, []);
}

const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?$/;

/**
 * `${NAME}` → the variable (an error when unset), `${NAME:-default}` → the variable, or `default`
 * when it is unset or empty (as in the shell), `$${` → a literal `${`. Other `$` are kept.
 */
function interpolate(text: string, env: Env): string | { error: string } {
  let out = '';
  let i = 0;
  for (;;) {
    const at = text.indexOf('${', i);
    if (at < 0) return out + text.slice(i);
    if (at > 0 && text[at - 1] === '$') {
      out += text.slice(i, at - 1) + '${';
      i = at + 2;
      continue;
    }
    const end = text.indexOf('}', at);
    const inner = end < 0 ? undefined : text.slice(at + 2, end);
    const m = inner === undefined ? null : REFERENCE.exec(inner);
    if (!m) {
      const found = end < 0 ? text.slice(at) : text.slice(at, end + 1);
      return { error: `expected \${NAME} or \${NAME:-default} (NAME of letters, digits and "_"), got ${JSON.stringify(found)}` };
    }
    const name = m[1] ?? '';
    const value = env[name];
    let sub: string;
    if (m[2] !== undefined) sub = value === undefined || value === '' ? m[2] : value;
    else if (value !== undefined) sub = value;
    else return { error: `expected environment variable ${name} to be set, got nothing (write \${${name}:-default} to give a default)` };
    out += text.slice(i, at) + sub;
    i = end + 1;
  }
}
