/**
 * Real processes for tests: the server and client CLIs run as users run
 * them, through the one spawner in `internal/spawn.ts`.
 *
 * @module
 */

import {
  type DenoOptions,
  type Process,
  spawnDeno as spawnScript,
} from "../internal/spawn.ts";

export { freePort, type Process as Proc } from "../internal/spawn.ts";

/**
 * Runs `deno run --quiet <permissions> <script> ...args` from the project
 * root, with every permission unless `opts.permissions` narrows them; stdout
 * and stderr are collected.
 */
export function spawnDeno(
  script: string,
  args: string[],
  opts: Partial<DenoOptions> = {},
): Process {
  return spawnScript(script, args, { permissions: "all", ...opts });
}
