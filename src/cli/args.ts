/** A tiny flag parser for the client commands: `--name value`, `--name=value`, and positionals. */
import { CliError } from "./client.js";

export interface Parsed {
  readonly flags: Record<string, string>;
  readonly positional: string[];
}

export function parseArgs(args: readonly string[], known: readonly string[], booleans: readonly string[] = []): Parsed {
  const flags: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("--") || arg === "--") {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (booleans.includes(name)) {
      flags[name] = "true";
      continue;
    }
    if (!known.includes(name)) throw new CliError(`unknown option "--${name}"`, 2);
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new CliError(`option --${name} needs a value`, 2);
    flags[name] = value;
  }
  return { flags, positional };
}
