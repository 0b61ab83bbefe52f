/**
 * /metrics of a cluster: every worker records into its own registry, so the primary asks each for its
 * Prometheus text and merges them into one exposition, each sample labelled with its worker (`worker="1"`,
 * the worker's slot, stable across restarts). Prometheus needs a metric family's lines together and its
 * HELP and TYPE once, so the families are regrouped rather than the texts concatenated.
 */

interface Family {
  meta: string[];
  samples: string[];
}

/** Merges `texts` (worker slot → exposition) into one exposition. */
export function mergeExpositions(texts: ReadonlyMap<number, string>): string {
  const families = new Map<string, Family>();
  const familyOf = (name: string) => {
    let family = families.get(name);
    if (!family) families.set(name, (family = { meta: [], samples: [] }));
    return family;
  };
  for (const [worker, text] of texts) {
    let current: Family | undefined;
    let currentName = '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta) {
        currentName = meta[2];
        current = familyOf(currentName);
        if (!current.meta.some((kept) => kept.startsWith(`# ${meta[1]} `))) current.meta.push(line);
        continue;
      }
      if (line.startsWith('#')) continue;
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '';
      // Samples follow their family's TYPE line (histograms add _bucket, _sum, _count to the name).
      const family = current && name.startsWith(currentName) ? current : familyOf(name);
      family.samples.push(withLabel(line, name, worker));
    }
  }
  return [...families.values()].map((family) => [...family.meta, ...family.samples].join('\n')).join('\n') + (families.size ? '\n' : '');
}

function withLabel(line: string, name: string, worker: number): string {
  const rest = line.slice(name.length);
  if (rest.startsWith('{}')) return `${name}{worker="${worker}"}${rest.slice(2)}`;
  return rest.startsWith('{') ? `${name}{worker="${worker}",${rest.slice(1)}` : `${name}{worker="${worker}"}${rest}`;
}
