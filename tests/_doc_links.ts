/**
 * The link checker of `docs_test.ts`, as pure functions over Markdown text:
 * the relative links of a page (outside code), the anchors its headings
 * make (GitHub's rule), and the `deno task` names it mentions.
 *
 * @module
 */

/** One link target in a page, with its line for the message. */
export interface DocLink {
  line: number;
  /** As written: `docs/operations.md#redis`, `#tests`, `server/stream.ts`. */
  target: string;
}

/** Lines of `md` with fenced code blocks blanked (so line numbers stay right). */
function withoutFences(md: string): string[] {
  let fence: string | undefined;
  return md.split("\n").map((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence === undefined) {
      if (m) {
        fence = m[1]![0]!.repeat(m[1]!.length);
        return "";
      }
      return line;
    }
    if (m && m[1]!.startsWith(fence)) fence = undefined;
    return "";
  });
}

/** `line` with inline code spans blanked. */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)(?:(?!\1).)+?\1/g, "");
}

/**
 * Every link target of `md` that is not an absolute URL: inline links and
 * images (`[t](x)`, `![a](x)`), reference definitions (`[r]: x`) and HTML
 * `href`/`src`, outside fenced code and code spans.
 */
export function relativeLinks(md: string): DocLink[] {
  const out: DocLink[] = [];
  withoutFences(md).forEach((raw, i) => {
    const line = withoutCodeSpans(raw);
    const targets: string[] = [];
    for (
      const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)
    ) {
      targets.push(m[1]!);
    }
    const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(line);
    if (def) targets.push(def[1]!);
    for (const m of line.matchAll(/\b(?:href|src)="([^"]+)"/g)) {
      targets.push(m[1]!);
    }
    for (const t of targets) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(t)) continue; // https:, mailto:, …
      out.push({ line: i + 1, target: t });
    }
  });
  return out;
}

/**
 * The anchors of `md`'s headings as GitHub makes them: the heading's text
 * (links reduced to their text), lower-cased, everything but letters,
 * digits, spaces, `-` and `_` dropped, spaces turned into `-`; a repeated
 * slug gets `-1`, `-2`, … Plus explicit `id="…"`/`name="…"` anchors.
 */
export function headingAnchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of withoutFences(md)) {
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) {
      const text = h[1]!.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1");
      const base = text.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-");
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      out.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/\b(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  }
  return out;
}

/**
 * The task names in `deno task NAME` (also `npx -y deno@2.9.6 task NAME`)
 * anywhere in `md`, code blocks included: that is where commands are.
 */
export function taskNames(md: string): { line: number; task: string }[] {
  const out: { line: number; task: string }[] = [];
  md.split("\n").forEach((line, i) => {
    for (const m of line.matchAll(/\bdeno(?:@[\w.-]+)? task ([a-z][\w:-]*)/g)) {
      out.push({ line: i + 1, task: m[1]! });
    }
  });
  return out;
}

/** What a checker needs to know of the files around a page. */
export interface DocFiles {
  /** Whether a path (relative to the project root, no `..` left) exists. */
  exists(path: string): boolean;
  /** A Markdown file's text, for its anchors. */
  read(path: string): string;
}

/** `dir` + `rel`, normalised; undefined when it climbs out of the root. */
export function joinPath(dir: string, rel: string): string | undefined {
  const parts = dir === "" ? [] : dir.split("/");
  for (const p of rel.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join("/");
}

/**
 * The broken links of page `path` (relative to the root): a file or folder
 * that does not exist, or an `#anchor` no heading of the target makes. One
 * line each: `README.md:12: docs/nope.md does not exist`.
 */
export function brokenLinks(
  path: string,
  md: string,
  files: DocFiles,
): string[] {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
  const problems: string[] = [];
  for (const { line, target } of relativeLinks(md)) {
    const hash = target.indexOf("#");
    const file = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : target.slice(hash + 1);
    const to = file === "" ? path : joinPath(dir, file);
    const where = `${path}:${line}: ${target}`;
    if (to === undefined || !files.exists(to)) {
      problems.push(`${where}: ${to ?? file} does not exist`);
      continue;
    }
    if (anchor === undefined || anchor === "") continue;
    if (!to.endsWith(".md")) {
      problems.push(`${where}: an anchor into ${to}, which is not Markdown`);
      continue;
    }
    const text = to === path ? md : files.read(to);
    if (!headingAnchors(text).has(decodeURIComponent(anchor))) {
      problems.push(`${where}: no heading in ${to} makes #${anchor}`);
    }
  }
  return problems;
}
