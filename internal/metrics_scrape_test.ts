import { assertEquals } from "../tests/_assert.ts";
import { parseMetrics } from "./metrics_scrape.ts";

Deno.test("parseMetrics reads plain, labelled and exponent samples and skips comments", () => {
  const m = parseMetrics(
    [
      "# HELP seqstream_connections Open connections.",
      "# TYPE seqstream_connections gauge",
      "seqstream_connections 3",
      'seqstream_store_ops_total{op="get"} 12',
      "seqstream_uptime_seconds 1.5e+3",
      "garbage line",
    ].join("\n"),
  );
  assertEquals([...m], [
    ["seqstream_connections", 3],
    ['seqstream_store_ops_total{op="get"}', 12],
    ["seqstream_uptime_seconds", 1500],
  ]);
});
