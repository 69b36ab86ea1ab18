// "Did you mean …?": the closest known name to a misspelt one.

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions), case-insensitive. */
export function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/** The best candidate within a distance that scales with the length, or one that contains/is contained; undefined if none is close. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const w = word.toLowerCase().replace(/[-_]/g, '');
  for (const c of candidates) {
    const cc = c.toLowerCase().replace(/[-_]/g, '');
    let dist = editDistance(word, c);
    if (w === cc) dist = 0.5; // only case or - / _ differ
    const limit = Math.max(1, Math.floor(Math.max(word.length, c.length) / 3));
    if (dist <= limit && dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  if (best === undefined && word.length >= 4) {
    for (const c of candidates) if (c.toLowerCase().startsWith(word.toLowerCase()) || word.toLowerCase().startsWith(c.toLowerCase())) return c;
  }
  return best;
}

/** " (did you mean "x"?)" or "". */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const s = suggest(word, candidates);
  return s === undefined ? '' : ` (did you mean "${s}"?)`;
}
