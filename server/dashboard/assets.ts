/**
 * The dashboard's files, held in memory. uPlot comes from the npm package
 * pinned in `deno.json` (`uplot`) through text imports: they are part of
 * the module graph, so `deno compile` embeds them and a compiled server
 * serves the same bytes with no file beside it and no network. The page's
 * own files sit beside this module.
 *
 * @module
 */

import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import indexHtml from "./index.html" with { type: "text" };
import dashboardJs from "./dashboard.js" with { type: "text" };
import dashboardCss from "./dashboard.css" with { type: "text" };

/** A file the dashboard serves. */
export interface Asset {
  readonly body: string;
  readonly type: string;
}

const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/** The dashboard's files by request path. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/", { body: indexHtml, type: "text/html; charset=utf-8" }],
  ["/assets/uPlot.iife.min.js", { body: uplotJs, type: JS }],
  ["/assets/uPlot.min.css", { body: uplotCss, type: CSS }],
  ["/assets/dashboard.js", { body: dashboardJs, type: JS }],
  ["/assets/dashboard.css", { body: dashboardCss, type: CSS }],
]);

/**
 * Sent with every dashboard answer: the page may load and fetch only from
 * the server that served it (uPlot sets inline styles, hence the style
 * exception).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};
