// deno-lint-ignore-file no-console -- a benchmark script: figures go to stdout.
/**
 * Compares two V8 heap snapshots (from `bench/memory.ts --snapshots DIR`):
 * self size and count per constructor name (objects, closures, arrays,
 * strings, code…) in `after` minus `before`, divided by the sessions opened
 * in between, largest first.
 *
 * ```sh
 * deno run --allow-read bench/heap_diff.ts before.heapsnapshot after.heapsnapshot 5000 [top]
 * ```
 *
 * @module
 */

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

function totals(path: string): Map<string, { size: number; count: number }> {
  const s = JSON.parse(Deno.readTextFileSync(path)) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf("type"),
    iName = fields.indexOf("name"),
    iSize = fields.indexOf("self_size");
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    const name = type === "object" || type === "closure" || type === "native"
      ? `${type}:${s.strings[s.nodes[i + iName]!]}`
      : type;
    const t = out.get(name) ?? { size: 0, count: 0 };
    t.size += s.nodes[i + iSize]!;
    t.count++;
    out.set(name, t);
  }
  return out;
}

const [a, b, n, top] = Deno.args;
const before = totals(a!), after = totals(b!);
const sessions = Number(n);
const rows = [...after].map(([name, t]) => {
  const o = before.get(name) ?? { size: 0, count: 0 };
  return {
    name,
    bytes: (t.size - o.size) / sessions,
    count: (t.count - o.count) / sessions,
  };
}).sort((x, y) => y.bytes - x.bytes);
let sum = 0;
for (const r of rows) sum += r.bytes;
console.log(`per session: ${sum.toFixed(0)} B in all`);
for (const r of rows.slice(0, Number(top ?? 30))) {
  console.log(
    `${r.bytes.toFixed(0).padStart(7)} B ${
      r.count.toFixed(2).padStart(7)
    } ×  ${r.name}`,
  );
}
