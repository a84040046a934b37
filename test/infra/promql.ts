/**
 * Just enough PromQL reading for the infra tests: the vector selectors of an expression (metric name
 * and label matchers) and the labels its `by (…)` clauses group on, with the selectors each applies to.
 * Not a parser of the whole language: it reads the expressions of this repository's manifests, and a
 * test pins what it finds in them, so a construct it misreads fails loudly rather than checking nothing.
 */

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  metric: string;
  matchers: Matcher[];
}

export interface Grouping {
  labels: string[];
  /** Selectors inside the aggregated expression. */
  selectors: Selector[];
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';

function parseMatchers(body: string): Matcher[] {
  const out: Matcher[] = [];
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g;
  for (const m of body.matchAll(re)) out.push({ label: m[1]!, op: m[2] as Matcher['op'], value: m[3]!.replace(/\\(.)/g, '$1') });
  const rest = body.replace(re, '').replace(/[\s,]/g, '');
  if (rest) throw new Error(`unread label matchers: ${body}`);
  return out;
}

/** Every vector selector of `expr`, in order. */
export function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  // Grouping clauses and range/offset durations name no metric.
  let s = expr.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ').replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(new RegExp(`(${NAME})?\\s*\\{([^}]*)\\}`, 'g'), (_, metric: string | undefined, body: string) => {
    const matchers = parseMatchers(body);
    const name = metric ?? matchers.find((m) => m.label === '__name__' && m.op === '=')?.value;
    if (!name) throw new Error(`a selector without a metric name: {${body}}`);
    out.push({ metric: name, matchers: matchers.filter((m) => m.label !== '__name__') });
    return ' ';
  });
  for (const m of s.matchAll(new RegExp(`(?<![\\w:.])(${NAME})(\\s*\\()?`, 'g'))) {
    if (m[2] || KEYWORDS.has(m[1]!.toLowerCase())) continue; // a function or aggregation, or a keyword
    out.push({ metric: m[1]!, matchers: [] });
  }
  return out;
}

/** The balanced parenthesised group of `s` that opens at `open` (the index of its `(`). */
function groupAt(s: string, open: number): string {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return s.slice(open + 1, i);
  }
  throw new Error(`unbalanced parentheses in ${s}`);
}

/** The group that closes just before `end` (for `sum(x) by (l)`). */
function groupBefore(s: string, end: number): string {
  let i = end - 1;
  while (i >= 0 && /\s/.test(s[i]!)) i--;
  if (s[i] !== ')') throw new Error(`no aggregated expression before "by" in ${s}`);
  let depth = 0;
  for (let j = i; j >= 0; j--) {
    if (s[j] === ')') depth++;
    else if (s[j] === '(' && --depth === 0) return s.slice(j + 1, i);
  }
  throw new Error(`unbalanced parentheses in ${s}`);
}

/** The `by (…)` groupings of `expr` (`without` keeps the labels it does not name, so it needs none). */
export function groupings(expr: string): Grouping[] {
  const out: Grouping[] = [];
  for (const m of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
    const labels = m[1]!.split(',').map((l) => l.trim()).filter(Boolean);
    const after = m.index! + m[0].length;
    const next = /^\s*\(/.exec(expr.slice(after));
    const inner = next ? groupAt(expr, after + next[0].length - 1) : groupBefore(expr, m.index!);
    out.push({ labels, selectors: selectors(inner) });
  }
  return out;
}

/** Whether a label value satisfies a matcher (PromQL regexes are anchored). */
export function matches(m: Matcher, value: string | undefined): boolean {
  const v = value ?? '';
  switch (m.op) {
    case '=':
      return v === m.value;
    case '!=':
      return v !== m.value;
    case '=~':
      return new RegExp(`^(?:${m.value})$`).test(v);
    case '!~':
      return !new RegExp(`^(?:${m.value})$`).test(v);
  }
}
