/**
 * The docs hold together: every relative link in README.md, PROTOCOL.md,
 * BENCHMARKS.md and docs/*.md leads to a file that exists (and to a heading
 * that exists, for `#anchors`), and every `deno task NAME` they tell the
 * reader to run is a task in deno.json.
 */

import { assert_, assertEquals } from "./_assert.ts";
import { ROOT, spawnDeno } from "../internal/spawn.ts";
import {
  brokenLinks,
  type DocFiles,
  headingAnchors,
  relativeLinks,
  taskNames,
} from "./_doc_links.ts";

const root = ROOT.pathname.replace(/\/$/, "");

const disk: DocFiles = {
  exists(path) {
    try {
      Deno.statSync(`${root}/${path}`);
      return true;
    } catch {
      return false;
    }
  },
  read: (path) => Deno.readTextFileSync(`${root}/${path}`),
};

function pages(): string[] {
  const out = ["README.md", "PROTOCOL.md", "BENCHMARKS.md"];
  for (const e of Deno.readDirSync(`${root}/docs`)) {
    if (e.isFile && e.name.endsWith(".md")) out.push(`docs/${e.name}`);
  }
  return out.sort();
}

Deno.test("docs: every relative link and #anchor in README.md, PROTOCOL.md, BENCHMARKS.md and docs/*.md resolves", () => {
  const checked = pages();
  assert_(checked.some((p) => p.startsWith("docs/")), "no docs/*.md found");
  const problems: string[] = [];
  let links = 0;
  for (const page of checked) {
    const md = disk.read(page);
    links += relativeLinks(md).length;
    problems.push(...brokenLinks(page, md, disk));
  }
  assert_(
    links > 20,
    `only ${links} relative links found: is the parser blind?`,
  );
  assertEquals(problems, []);
});

Deno.test("docs: every `deno task NAME` in them is a task in deno.json", () => {
  const tasks = new Set(
    Object.keys(JSON.parse(disk.read("deno.json")).tasks as object),
  );
  const problems: string[] = [];
  let named = 0;
  for (const page of pages()) {
    for (const { line, task } of taskNames(disk.read(page))) {
      named++;
      if (!tasks.has(task)) {
        problems.push(`${page}:${line}: deno task ${task} is not in deno.json`);
      }
    }
  }
  assert_(named > 10, `only ${named} task mentions found`);
  assertEquals(problems, []);
});

/** Flag names in the first column of the first table after `heading`. */
function tableFlags(md: string, heading: string): string[] {
  const lines = md.split("\n");
  const start = lines.indexOf(heading);
  assert_(start >= 0, `no "${heading}" heading`);
  const rows: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("#")) break;
    if (!line.startsWith("|")) {
      if (rows.length > 0) break;
      continue;
    }
    rows.push(line);
  }
  return rows.flatMap((r) =>
    [...r.split("|")[1]!.matchAll(/`--([a-z-]+)/g)].map((m) => m[1]!)
  );
}

Deno.test("docs: the flag tables list every flag `--help` shows, and no other (server, client, proxy)", async () => {
  const cases = [
    ["server.ts", "README.md", "## Server"],
    ["client.ts", "README.md", "## Client"],
    ["proxy.ts", "docs/proxy.md", "## Flags"],
  ] as const;
  for (const [script, page, heading] of cases) {
    await using p = spawnDeno(script, ["--help"], { permissions: "all" });
    const out = await p.done();
    assertEquals(out.code, 0, out.stderr);
    const help = [...out.stdout.matchAll(/^\s+(?:-\w, )?--([a-z-]+)/gm)].map((
      m,
    ) => m[1]!);
    assert_(help.length > 10, out.stdout);
    assertEquals(
      tableFlags(disk.read(page), heading).sort(),
      help.sort(),
      `${page} "${heading}" against ${script} --help`,
    );
  }
});

// The checker itself must be able to fail: it is fed pages with known faults.

const fake = (files: Record<string, string>): DocFiles => ({
  exists: (p) =>
    p in files || Object.keys(files).some((f) => f.startsWith(`${p}/`)),
  read: (p) => files[p] ?? "",
});

Deno.test("brokenLinks reports a missing file, a missing anchor, a path out of the root; passes good ones", () => {
  const files = fake({
    "README.md": "",
    "docs/ops.md": "# Operations\n\n## Redis HA\n\n## Redis HA\n",
    "docs/arch.md": "# Architecture\n",
    "docs/dashboard.png": "",
    "server/stream.ts": "",
  });
  const page = [
    "# Title",
    "See [ops](docs/ops.md), [HA](docs/ops.md#redis-ha), [again](docs/ops.md#redis-ha-1),",
    "![shot](docs/dashboard.png), [code](server/stream.ts), [here](#title), [dir](docs/).",
    "[gone](docs/gone.md) and [bad anchor](docs/ops.md#nope) and [self](#nope)",
    "[up](../outside.md) [web](https://example.com/x.md) `[not a link](nope.md)`",
    "```",
    "[in a fence](nope.md)",
    "```",
    "[ref]: docs/missing.md",
  ].join("\n");
  assertEquals(brokenLinks("README.md", page, files), [
    "README.md:4: docs/gone.md: docs/gone.md does not exist",
    "README.md:4: docs/ops.md#nope: no heading in docs/ops.md makes #nope",
    "README.md:4: #nope: no heading in README.md makes #nope",
    "README.md:5: ../outside.md: ../outside.md does not exist",
    "README.md:9: docs/missing.md: docs/missing.md does not exist",
  ]);
  // Relative to the page's own folder.
  assertEquals(
    brokenLinks(
      "docs/ops.md",
      "[r](../README.md) [s](arch.md#architecture)",
      files,
    ),
    [],
  );
  assertEquals(brokenLinks("docs/ops.md", "[r](README.md)", files), [
    "docs/ops.md:1: README.md: docs/README.md does not exist",
  ]);
});

Deno.test("headingAnchors follows GitHub's slugs", () => {
  const a = headingAnchors(
    [
      "## Dependencies, and why not @std",
      "### Resumable runs: `--state FILE`",
      "### Store operations are O(1) per session",
      "## Standalone binaries: `deno task compile`",
      "## [Linked](x.md) heading",
      "## Tests",
      "## Tests",
      '<a id="custom"></a>',
    ].join("\n"),
  );
  for (
    const want of [
      "dependencies-and-why-not-std",
      "resumable-runs---state-file",
      "store-operations-are-o1-per-session",
      "standalone-binaries-deno-task-compile",
      "linked-heading",
      "tests",
      "tests-1",
      "custom",
    ]
  ) assert_(a.has(want), `${want} not in ${[...a].join(", ")}`);
});

Deno.test("taskNames finds deno task and npx deno@… task, in code too", () => {
  assertEquals(
    taskNames(
      "run `deno task test`\n```sh\nnpx -y deno@2.9.6 task demo --x\ndeno task bench:burst\n```",
    ),
    [
      { line: 1, task: "test" },
      { line: 3, task: "demo" },
      { line: 4, task: "bench:burst" },
    ],
  );
});
